// Live reload of dispatcher.cnf: a new [SERVICE] port is listened on, a removed one takes no
// new connection while a session opened on it finishes its message, and a new MAX_CONNS is
// used at once (a waiting connection gets its process) and shown by `imsimta process --json`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, waitFor } from '../helpers/instance.js';
import { refused, type MtaInstance, type ProcessRow } from '../helpers/running-instance.js';
import { SmtpTalk, aliceMessages, settledReloads, startMta, watcherStatus } from './reload-harness.js';

const ADDRESS = '127.0.11.2';
let mta: MtaInstance;
let submitPort: number;

/** SMTP: one process taking `maxConns` sessions; SUBMIT on its own port when asked. */
function dispatcherCnf(maxConns: number, submit: boolean): string {
  const smtp = `[SERVICE=SMTP]\nPORT=${mta.port}\nINTERFACE_ADDRESS=${ADDRESS}\nMAX_PROCS=1\nMIN_CONNS=1\nMAX_CONNS=${maxConns}\n`;
  return submit ? `${smtp}\n[SERVICE=SUBMIT]\nPORT=${submitPort}\nINTERFACE_ADDRESS=${ADDRESS}\n` : smtp;
}

async function reload(): Promise<string> {
  const r = await mta.imsimta(['reload']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

before(async () => {
  mta = await startMta({ address: ADDRESS, service: 'MAX_PROCS=1\nMIN_CONNS=1\nMAX_CONNS=1' });
  submitPort = await freePort(ADDRESS);
});
after(async () => mta?.cleanup());

test('a new [SERVICE] port is listened on; a removed one refuses new connections while its open session finishes', async () => {
  assert.ok(await refused(ADDRESS, submitPort));
  mta.inst.write('etc/dispatcher.cnf', dispatcherCnf(1, true));
  const added = await reload();
  assert.match(added, new RegExp(`\\(new: SUBMIT ${ADDRESS.replace(/\./g, '\\.')}:${submitPort}\\)`));
  assert.equal(added.trim().split('\n').length, 1);

  const session = await SmtpTalk.open(ADDRESS, submitPort);
  try {
    assert.equal((await session.reply()).code, 220);
    assert.equal((await session.command('EHLO client.test')).code, 250);
    assert.equal((await session.command('MAIL FROM:<sender@client.test>')).code, 250);
    assert.equal((await session.command('RCPT TO:<alice@localhost>')).code, 250);
    const rows = await mta.processes();
    assert.ok(rows.some((r) => r.role === 'smtp_server' && r.service === 'SUBMIT' && r.connections === 1), JSON.stringify(rows));

    // The watcher applies the edit before the operator's command comes: the command still
    // reports what the edit changed.
    const watchedBefore = (await watcherStatus(mta)).reloads.watched;
    mta.inst.write('etc/dispatcher.cnf', dispatcherCnf(1, false));
    await settledReloads(mta, (r) => r.watched > watchedBefore, 'the watcher to apply the edit');
    const removed = await reload();
    assert.match(removed, new RegExp(`closed: SUBMIT ${ADDRESS.replace(/\./g, '\\.')}:${submitPort}`));
    assert.ok(await refused(ADDRESS, submitPort), 'the removed port still accepts connections');

    // The session on the removed port finishes its message.
    assert.equal((await session.command('DATA')).code, 354);
    session.write('Subject: across a reload\r\n\r\nstill here\r\n');
    const queued = await session.command('.');
    assert.equal(queued.code, 250, queued.text);
    assert.equal((await session.command('QUIT')).code, 221);
  } finally {
    session.close();
  }
  await waitFor(() => aliceMessages(mta).length === 1, { what: 'the message in mailbox/alice', timeoutMs: 15_000 });
  // Its process retires once the session is over.
  await waitFor(async () => !(await mta.processes()).some((r) => r.service === 'SUBMIT'), { what: 'the SUBMIT process to exit', timeoutMs: 15_000 });
});

test('a new MAX_CONNS applies at once and `imsimta process --json` shows it', async () => {
  const first = await SmtpTalk.open(ADDRESS, mta.port);
  const second = await SmtpTalk.open(ADDRESS, mta.port);
  try {
    assert.equal((await first.reply()).code, 220);
    // MAX_PROCS=1, MAX_CONNS=1: the second connection waits in the dispatcher.
    await waitFor(async () => (await mta.processes()).find((r) => r.role === 'dispatcher')?.waiting === 1, { what: 'a waiting connection' });
    assert.equal(second.hasData, false);
    const smtp = (rows: ProcessRow[]) => rows.filter((r) => r.role === 'smtp_server' && r.service === 'SMTP');
    assert.deepEqual(smtp(await mta.processes()).map((r) => r.max_conns), [1]);

    mta.inst.write('etc/dispatcher.cnf', dispatcherCnf(3, false));
    await reload();
    assert.equal((await second.reply()).code, 220);
    const rows = smtp(await mta.processes());
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.max_conns, 3);
    assert.equal(rows[0]!.connections, 2);
    assert.equal((await second.command('QUIT')).code, 221);
  } finally {
    first.close();
    second.close();
  }
});

test('a new port that another program holds: the reload is refused and nothing changes', async () => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(submitPort, ADDRESS, resolve));
  try {
    mta.inst.write('etc/dispatcher.cnf', `${dispatcherCnf(2, false)}PORT=${mta.port},${submitPort}\n`);
    const r = await mta.imsimta(['reload']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`dispatcher kept its configuration: port ${submitPort} on ${ADDRESS.replace(/\./g, '\\.')} is in use by another program`));
    // The old limits are still in force (MAX_CONNS 3), and the old port still serves.
    const rows = (await mta.processes()).filter((x) => x.role === 'smtp_server' && x.service === 'SMTP');
    assert.ok(rows.every((x) => x.max_conns === 3), JSON.stringify(rows));
    const s = await SmtpTalk.open(ADDRESS, mta.port);
    try {
      assert.equal((await s.reply()).code, 220);
    } finally {
      s.close();
    }
  } finally {
    squatter.close();
    mta.inst.write('etc/dispatcher.cnf', dispatcherCnf(3, false));
  }
});
