// ACCEPT_MODE=SHARED seen from outside: the server processes accept from the listening socket
// themselves, and the dispatcher keeps the spawn rule by starting processes (MIN_PROCS, a new one
// once every process holds MIN_CONNS, never beyond MAX_PROCS); each process stops accepting at
// MAX_CONNS (the connection waits in the kernel's accept queue, shown as `waiting`) and resumes
// below it; a killed process is replaced; MAX_LIFE_CONNS retires one. And MAX_CONNS_PER_IP
// counted across the processes, and INTERNAL_IP, in both modes (before, each process counted
// MAX_CONNS_PER_IP alone).
import { test, after } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/instance.js';
import { MtaInstance, RawSession, greeting, isAlive, SERVER_GREETING, type ProcessRow } from '../helpers/running-instance.js';
import { createHeldInstance, queuedIdsOf, queuedMessages } from '../helpers/held-instance.js';
import { runTool } from './smtp-harness.js';

const ADDRESS = '127.0.44.2';
const sessions: RawSession[] = [];
const instances: MtaInstance[] = [];

after(async () => {
  for (const s of sessions) s.close();
  for (const m of instances) await m.cleanup();
});

async function started(address: string, service: string, options?: string): Promise<MtaInstance> {
  const mta = await MtaInstance.create({ address, service });
  instances.push(mta);
  if (options) mta.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\n${options}\n`);
  const r = await mta.cli('start-msg', []);
  assert.equal(r.code, 0, r.stderr);
  return mta;
}

const servers = (rows: ProcessRow[]) => rows.filter((r) => r.role === 'smtp_server');
/** Connections per SMTP server process, largest first. */
const counts = (rows: ProcessRow[]) => servers(rows).map((r) => r.connections!).sort((a, b) => b - a);

async function expectRows(mta: MtaInstance, what: string, ok: (rows: ProcessRow[]) => boolean): Promise<ProcessRow[]> {
  let last: ProcessRow[] = [];
  try {
    return await waitFor(async () => {
      last = await mta.processes();
      return ok(last) ? last : null;
    }, { what });
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`, { cause: err });
  }
}

async function openSession(mta: MtaInstance, localAddress?: string): Promise<RawSession> {
  const s = await RawSession.open(mta.address, mta.port, 5000, localAddress);
  sessions.push(s);
  return s;
}

const waiting = (rows: ProcessRow[]) => rows.find((r) => r.role === 'dispatcher')?.waiting;

test('MIN_PROCS, MIN_CONNS, MAX_PROCS and MAX_CONNS with the processes accepting themselves', async () => {
  const mta = await started(ADDRESS, 'ACCEPT_MODE=SHARED\nMIN_PROCS=1\nMIN_CONNS=2\nMAX_CONNS=3\nMAX_PROCS=2\nMAX_LIFE_CONNS=1000');
  await expectRows(mta, 'one process, accepting', (r) => JSON.stringify(counts(r)) === '[0]' && servers(r)[0]!.accepting === true);
  const opened: RawSession[] = [];
  for (let n = 1; n <= 6; n++) {
    const s = await openSession(mta);
    assert.match(await s.banner(), SERVER_GREETING);
    opened.push(s);
    const rows = await expectRows(mta, `${n} connections`, (r) => counts(r).reduce((a, b) => a + b, 0) === n);
    assert.ok(servers(rows).length <= 2, 'never more than MAX_PROCS');
    assert.ok(counts(rows).every((c) => c <= 3), `never more than MAX_CONNS: ${JSON.stringify(counts(rows))}`);
    // Once the only process holds MIN_CONNS, a second one is started before more connections come.
    if (n === 2) await expectRows(mta, 'a second process', (r) => servers(r).length === 2 && servers(r).every((p) => p.ready));
  }
  // Both at MAX_CONNS: neither accepts; the next connection waits in the accept queue, unanswered.
  const waiter = await openSession(mta);
  const full = await expectRows(mta, 'both full and one connection waiting', (r) => JSON.stringify(counts(r)) === '[3,3]' && waiting(r) === 1);
  assert.ok(servers(full).every((p) => p.accepting === false), JSON.stringify(full));
  assert.equal(waiter.received, '');
  // A session ends: its process accepts again, and the waiting connection gets its greeting.
  opened[0]!.close();
  assert.match(await waiter.banner(), SERVER_GREETING);
  await expectRows(mta, 'both full again, none waiting', (r) => JSON.stringify(counts(r)) === '[3,3]' && waiting(r) === 0);
  for (const s of [...opened, waiter]) s.close();
  await expectRows(mta, 'all sessions gone', (r) => counts(r).every((c) => c === 0) && servers(r).every((p) => p.accepting === true));

  // A killed process: its sessions end with it, the service goes on and MIN_PROCS brings it back.
  const victim = servers(await mta.processes())[0]!;
  process.kill(victim.pid, 'SIGKILL');
  await waitFor(() => !isAlive(victim.pid), { what: 'the process to die' });
  await expectRows(mta, 'the dispatcher to forget it', (r) => !servers(r).some((p) => p.pid === victim.pid) && servers(r).some((p) => p.ready));
  for (let i = 0; i < 5; i++) assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
  const rows = await mta.processes();
  assert.ok(servers(rows).length >= 1 && servers(rows).length <= 2);
});

test('MAX_LIFE_CONNS: the process stops accepting, retires once its sessions end, and MIN_PROCS brings a new one', async () => {
  const mta = await started('127.0.44.3', 'MIN_PROCS=1\nMAX_PROCS=2\nMAX_LIFE_CONNS=2');
  const first = await waitFor(async () => servers(await mta.processes()).find((r) => r.ready && r.accepting));
  const held = await openSession(mta);
  assert.match(await held.banner(), SERVER_GREETING);
  assert.match(await greeting(mta.address, mta.port), SERVER_GREETING);
  // Two connections served: it retires, but stays while the held session is open.
  const rows = await expectRows(mta, 'the first process to retire and a second to start', (r) =>
    Boolean(r.find((p) => p.pid === first.pid && p.retiring === true) && servers(r).some((p) => p.pid !== first.pid)),
  );
  assert.ok(isAlive(first.pid));
  assert.equal(rows.find((p) => p.pid === first.pid)?.connections, 1);
  // New connections go to the new process.
  for (let i = 0; i < 3; i++) assert.match(await greeting(mta.address, mta.port), SERVER_GREETING);
  assert.equal((await mta.processes()).find((p) => p.pid === first.pid)?.served, 2);
  held.close();
  await waitFor(() => !isAlive(first.pid), { what: 'the retired process to exit' });
});

for (const mode of ['HANDOFF', 'SHARED'] as const) {
  test(`MAX_CONNS_PER_IP is counted across the processes (ACCEPT_MODE=${mode})`, async () => {
    const address = mode === 'HANDOFF' ? '127.0.44.10' : '127.0.44.20';
    const [clientA, clientB] = mode === 'HANDOFF' ? ['127.0.44.11', '127.0.44.12'] : ['127.0.44.21', '127.0.44.22'];
    const mta = await started(address, `ACCEPT_MODE=${mode}\nMIN_PROCS=2\nMAX_PROCS=2\nMIN_CONNS=1\nMAX_CONNS=20`, 'MAX_CONNS_PER_IP=3');
    await expectRows(mta, 'two processes ready', (r) => servers(r).length === 2 && servers(r).every((p) => p.ready));
    const mine: RawSession[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await openSession(mta, clientA);
      assert.match(await s.banner(), /^220 /);
      mine.push(s);
    }
    // Handed over, they were spread over both processes, each below the limit on its own.
    if (mode === 'HANDOFF') await expectRows(mta, 'sessions on both processes', (r) => JSON.stringify(counts(r)) === '[2,1]');
    const fourth = await openSession(mta, clientA);
    assert.match(await fourth.banner(), /^421 4\.7\.0 /);
    fourth.close();
    // Another address is not affected.
    const other = await openSession(mta, clientB);
    assert.match(await other.banner(), /^220 /);
    // One of the three ends: a new session from that address is taken again.
    mine[0]!.close();
    await waitFor(async () => {
      const s = await openSession(mta, clientA);
      const banner = await s.banner();
      if (banner.startsWith('220 ')) return s;
      s.close();
      return null;
    }, { what: 'a session from the address again' });
    const again = await openSession(mta, clientA);
    assert.match(await again.banner(), /^421 4\.7\.0 /, 'still at most three');
    for (const s of [...mine, other, again]) s.close();
  });
}

for (const mode of ['HANDOFF', 'SHARED'] as const) {
  test(`INTERNAL_IP decides relaying by the client's own address (ACCEPT_MODE=${mode}): swaks from inside relays, from outside gets 550 5.7.1`, async () => {
    const [address, nowhere, inside, outside] = mode === 'HANDOFF' ? ['127.0.44.40', '127.0.44.41', '127.0.44.42', '127.0.44.43'] : ['127.0.44.50', '127.0.44.51', '127.0.44.52', '127.0.44.53'];
    const mta = await createHeldInstance({ address, nowhere, service: `ACCEPT_MODE=${mode}\nMIN_PROCS=2\nMAX_PROCS=2` });
    instances.push(mta);
    // Only the inside client (and the instance itself) may relay; the outside one is on the same loopback network.
    mta.inst.write('etc/option.dat', `INTERNAL_IP=${inside}/32,${address}/32\n`);
    // The outside client's made-up domain is not looked up (no name server off the host).
    const imta = join(mta.root, 'etc', 'imta.cnf');
    writeFileSync(imta, readFileSync(imta, 'utf8').replace(/^tcp_local smtp mx /m, 'tcp_local smtp mx spfnone noauthverify '));
    const r = await mta.cli('start-msg', []);
    assert.equal(r.code, 0, r.stderr);
    const swaks = (from: string) =>
      runTool('/usr/bin/swaks', ['--server', `${address}:${mta.port}`, '--local-interface', from, '--timeout', '10', '--hide-informational', '--from', 'a@client.test', '--to', 'b@remote.test', '--ehlo', 'client.test']);
    const relayed = await swaks(inside);
    assert.equal(relayed.code, 0, relayed.stdout + relayed.stderr);
    assert.equal(queuedIdsOf(relayed.stdout).length, 1, relayed.stdout);
    const denied = await swaks(outside);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stdout, /^<\*\* 550 5\.7\.1 <b@remote\.test>: Relaying denied$/m);
    const rows = await queuedMessages(mta);
    assert.deepEqual(rows.map((row) => row.recipients), [['b@remote.test']], 'only the inside client’s message is queued');
  });
}
