// stop-msg while sessions are open, some of them mid-transaction: the port closes at once; a
// session that ends its message within MAX_SHUTDOWN seconds gets its 250; the others get 421
// and are closed; nothing answered 250 is lost (it is in the queue after the next start), and
// nothing half-received is queued. In both ACCEPT_MODEs (the processes accepting from the shared
// socket, which each closes at once, and the dispatcher handing connections over).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/instance.js';
import { refused, greeting, SERVER_GREETING, type MtaInstance } from '../helpers/running-instance.js';
import { createHeldInstance, queuedMessages, queuedIdsOf } from '../helpers/held-instance.js';
import { SmtpProbe, type Reply } from './smtp-harness.js';

const GRACE_S = 3;
const MODES = [
  { mode: 'SHARED', address: '127.0.4.30', nowhere: '127.0.4.31', client: '127.0.4.32' },
  { mode: 'HANDOFF', address: '127.0.4.33', nowhere: '127.0.4.34', client: '127.0.4.35' },
] as const;
/** The instance of the test running now, and its client's address. */
let cur: { mta: MtaInstance; address: string; client: string };
const instances: MtaInstance[] = [];
const probes: SmtpProbe[] = [];

after(async () => {
  for (const p of probes) p.close();
  for (const mta of instances) await mta.cleanup();
});

const BODY_START = 'From: someone@client.test\r\nSubject: in flight\r\n\r\nfirst part of the body\r\n';
const BODY_END = 'second part of the body\r\n.\r\n';

/** A session that has come as far as `stage`. */
async function session(stage: 'ehlo' | 'rcpt' | 'data', sender: string): Promise<SmtpProbe> {
  const p = await SmtpProbe.connect(cur.address, cur.mta.port, cur.client);
  probes.push(p);
  await p.hello('client.test');
  if (stage === 'ehlo') return p;
  assert.equal((await p.command(`MAIL FROM:<${sender}>`))?.code, 250);
  assert.equal((await p.command('RCPT TO:<somebody@remote.test>'))?.code, 250);
  if (stage === 'rcpt') return p;
  assert.equal((await p.command('DATA'))?.code, 354);
  p.write(BODY_START);
  return p;
}

async function wholeMessage(sender: string): Promise<string> {
  const p = await session('data', sender);
  p.write(BODY_END);
  const ids = queuedIdsOf((await p.reply())?.text ?? '');
  assert.equal(ids.length, 1);
  await p.command('QUIT');
  p.close();
  return ids[0]!;
}

for (const { mode, address, nowhere, client } of MODES) test(`stop-msg with open sessions: 250 within MAX_SHUTDOWN, 421 otherwise, nothing accepted lost (ACCEPT_MODE=${mode})`, async () => {
  // MAX_CONNS=4: the eight sessions below are on two processes in either mode (with a shared
  // accept the kernel may give them all to one process when it is idle).
  const mta = await createHeldInstance({ address, nowhere, service: `ACCEPT_MODE=${mode}\nMIN_PROCS=2\nMIN_CONNS=2\nMAX_CONNS=4\nMAX_SHUTDOWN=${GRACE_S}` });
  instances.push(mta);
  cur = { mta, address, client };
  const r = await mta.cli('start-msg', []);
  assert.equal(r.code, 0, r.stderr);
  const before = [await wholeMessage('before-1@client.test'), await wholeMessage('before-2@client.test')];
  const finishers = await Promise.all([1, 2, 3].map((i) => session('data', `finisher-${i}@client.test`)));
  const stuckInData = await Promise.all([1, 2].map(() => session('data', 'stuck@client.test')));
  const afterRcpt = await Promise.all([1, 2].map(() => session('rcpt', 'rcpt-only@client.test')));
  const idle = await session('ehlo', 'idle@client.test');
  const servers = (await mta.processes()).filter((p) => p.role === 'smtp_server');
  assert.ok(servers.length >= 2 && servers.filter((s) => (s.connections ?? 0) > 0).length >= 2, `sessions on two processes: ${JSON.stringify(servers)}`);

  const started = Date.now();
  const stopping = mta.cli('stop-msg', [], 60_000);
  // New connections are refused at once…
  await waitFor(() => refused(address, mta.port), { what: 'the port to close', intervalMs: 10 });
  // …while open sessions may still finish their message.
  const finished: Array<Reply | null> = await Promise.all(
    finishers.map(async (p) => {
      p.write(BODY_END);
      return p.reply(10_000);
    }),
  );
  const finisherIds = finished.map((r) => queuedIdsOf(r?.text ?? ''));
  for (const [i, ids] of finisherIds.entries()) assert.equal(ids.length, 1, `finisher ${i + 1}: ${finished[i]?.text}`);

  // The others are told 421 when the grace period ends, and closed.
  for (const p of [...stuckInData, ...afterRcpt, idle]) {
    const reply = await p.reply((GRACE_S + 10) * 1000);
    assert.equal(reply?.code, 421, `expected 421, got ${reply?.text ?? 'a closed connection'}`);
    assert.match(reply.text, /^421 4\.3\.2 /);
    assert.ok(await p.waitClosed(10_000), 'closed after the 421');
  }
  const stop = await stopping;
  assert.equal(stop.code, 0, stop.stderr);
  assert.ok(Date.now() - started >= GRACE_S * 1000 - 200, 'the sessions had their grace period');

  // Everything answered 250 is there after the next start; the half-received messages are not.
  const again = await mta.cli('start-msg', []);
  assert.equal(again.code, 0, again.stderr);
  assert.match(await greeting(address, mta.port), SERVER_GREETING);
  const rows = await queuedMessages(mta);
  const queued = new Map(rows.map((r) => [r.id, r]));
  for (const id of [...before, ...finisherIds.flat()]) {
    assert.ok(queued.has(id), `${id} answered 250 is queued`);
    assert.deepEqual(queued.get(id)!.recipients, ['somebody@remote.test']);
  }
  assert.deepEqual(rows.map((r) => r.from).sort(), ['before-1@client.test', 'before-2@client.test', 'finisher-1@client.test', 'finisher-2@client.test', 'finisher-3@client.test']);
});
