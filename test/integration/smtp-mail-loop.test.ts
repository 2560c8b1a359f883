// Mail loops stop at DATA (issue 13, item 3, the inbound part): a message whose header carries
// MAX_RECEIVED_LINES Received: fields already (ours would make one more) is refused with
// `554 5.4.6` and a J record in mail.log, nothing queued. Against a running instance whose rewrite
// rules send a domain back to the instance itself (the loop of the issue, 151 enqueues in 4 s
// and growing), the message goes round MAX_RECEIVED_LINES times at most, is refused, and is
// returned to its sender: the queue stops growing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { MtaInstance } from '../helpers/running-instance.js';
import { SmtpFixture, SmtpProbe, EXTERNAL_IP, mailTo, readMailLog } from './smtp-harness.js';

/** `n` Received: fields, folded as MTAs write them. */
function receivedLines(n: number): string {
  return Array.from({ length: n }, (_, i) => `Received: from hop${i}.test ([192.0.2.${i % 250}])\r\n\tby mx${i}.test with ESMTP id H${i}; Mon, 7 Dec 2026 10:00:00 +0000\r\n`).join('');
}

let fx: SmtpFixture;

before(async () => {
  fx = await SmtpFixture.start({ mailboxes: ['joe'], options: 'BANNER_PURGE_DELAY=0\n' });
});
after(async () => {
  await fx?.stop();
});

async function send(p: SmtpProbe, header: string): Promise<string> {
  assert.equal((await mailTo(p, 'joe@localhost', 'looper@client.test'))?.code, 250);
  assert.equal((await p.command('DATA'))?.code, 354);
  return (await p.command(`${header}Subject: hop test\r\n\r\nbody\r\n.`))?.text ?? '';
}

test('49 Received: lines are accepted, 50 (the default MAX_RECEIVED_LINES, ours would be the 51st) get 554 5.4.6 and a J record', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.match(await send(p, receivedLines(49)), /^250 /);
    const before = fx.queueFiles('l').length;
    const refused = await send(p, receivedLines(50));
    assert.match(refused, /^554 5\.4\.6 Too many hops/);
    assert.equal(fx.queueFiles('l').length, before, 'nothing queued');
    const j = fx.mailLog().filter((r) => r.event === 'J' && r.from === 'looper@client.test');
    assert.equal(j.length, 1);
    assert.match(j[0]!.status, /^554 5\.4\.6 /);
    // a refused message counts as one error, no more: the session goes on
    assert.match(await send(p, receivedLines(1)), /^250 /);
  } finally {
    p.close();
  }
});

test('Received: lines in the body, or fields merely named like it, are no hops', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assert.equal((await mailTo(p, 'joe@localhost'))?.code, 250);
    assert.equal((await p.command('DATA'))?.code, 354);
    const header = Array.from({ length: 60 }, (_, i) => `X-Received: ${i}\r\nReceived-SPF: pass ${i}\r\n`).join('');
    const reply = await p.command(`${header}Subject: quoted\r\n\r\n${receivedLines(60)}.`);
    assert.match(reply?.text ?? '', /^250 /);
  } finally {
    p.close();
  }
});

// ------------------------------------------------------------------ a domain routed back to us

const LOOP_ADDRESS = '127.0.23.40';
const HOPS = 6;
let mta: MtaInstance;

before(async () => {
  mta = await MtaInstance.create({ address: LOOP_ADDRESS, service: 'MIN_PROCS=1' });
  // loop.test is sent over SMTP to this very instance, which routes it the same way again.
  mta.inst.write(
    'etc/imta.cnf',
    `! mail loop test instance
localhost            $U%localhost@localhost
loop.test            $U%$D@tcp_loop-daemon
.                    $U%$H@tcp-daemon

l
localhost

tcp_loop smtp nomx daemon ${LOOP_ADDRESS} port ${mta.port}
tcp_loop-daemon

tcp_local smtp mx
tcp-daemon
`,
  );
  mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mx.loop.test\nBANNER_PURGE_DELAY=0\nMAX_RECEIVED_LINES=${HOPS}\n`);
  mkdirSync(join(mta.root, 'mailbox', 'joe', 'new'), { recursive: true });
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});
after(async () => {
  await mta?.cleanup();
});

test('a domain routed back to the instance itself: at most MAX_RECEIVED_LINES enqueues, then 554 5.4.6 and the message goes back to its sender', async () => {
  const p = await SmtpProbe.connect(LOOP_ADDRESS, mta.port, '127.0.23.41');
  try {
    await p.hello();
    assert.equal((await mailTo(p, 'anyone@loop.test', 'joe@localhost'))?.code, 250);
    assert.equal((await p.command('DATA'))?.code, 354);
    assert.match((await p.command('Subject: round and round\r\n\r\nbody\r\n.'))?.text ?? '', /^250 /);
  } finally {
    p.close();
  }
  const log = () => readMailLog(join(mta.root, 'log', 'mail.log'));
  const loopEnqueues = () => log().filter((r) => r.event === 'E' && r.destination === 'tcp_loop').length;
  // Until the notice reaches joe's mailbox (the sender): the loop is over; or until the loop goes past the limit.
  const end = await waitFor(
    () => (loopEnqueues() > HOPS ? 'still looping' : readdirSync(join(mta.root, 'mailbox', 'joe', 'new')).length > 0 ? 'returned' : null),
    { timeoutMs: 60_000, what: 'the returned message in joe’s mailbox' },
  );
  assert.equal(end, 'returned', `${loopEnqueues()} enqueues for tcp_loop and counting`);
  const records = log();
  const enqueues = records.filter((r) => r.event === 'E' && r.destination === 'tcp_loop');
  assert.ok(enqueues.length <= HOPS && enqueues.length >= 2, `${enqueues.length} enqueues for tcp_loop`);
  const refusals = records.filter((r) => r.event === 'J' && /^554 5\.4\.6 /.test(r.status));
  assert.equal(refusals.length, 1, JSON.stringify(records.filter((r) => r.event === 'J')));
  assert.ok(records.some((r) => r.event === 'R' && r.destination === 'tcp_loop'), 'the message was returned');
  // and nothing is left going round
  await waitFor(() => !existsAnyFile(join(mta.root, 'queue', 'tcp_loop')), { timeoutMs: 10_000, what: 'an empty tcp_loop queue' });
  assert.equal(log().filter((r) => r.event === 'E' && r.destination === 'tcp_loop').length, enqueues.length, 'no enqueue after the return');
});

function existsAnyFile(dir: string): boolean {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).some((e) => e.isFile());
  } catch {
    return false;
  }
}
