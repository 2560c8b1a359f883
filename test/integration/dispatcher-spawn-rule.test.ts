// The dispatcher's spawn rule seen from outside, with the dispatcher handing every connection
// over (ACCEPT_MODE=HANDOFF; the shared accept has its own test, dispatcher-shared-accept): raw TCP
// sessions held open, counts read with `imsimta process --json`; a killed server process;
// retirement after MAX_LIFE_CONNS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/instance.js';
import { MtaInstance, RawSession, greeting, isAlive, SERVER_GREETING, type ProcessRow } from '../helpers/running-instance.js';

const ADDRESS = '127.0.4.2';
const sessions: RawSession[] = [];
let mta: MtaInstance;
let lifeMta: MtaInstance | undefined;

before(async () => {
  mta = await MtaInstance.create({ address: ADDRESS, service: 'ACCEPT_MODE=HANDOFF\nMIN_PROCS=1\nMIN_CONNS=2\nMAX_CONNS=3\nMAX_PROCS=2\nMAX_LIFE_CONNS=1000' });
  const r = await mta.cli('start-msg', []);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  for (const s of sessions) s.close();
  await mta?.cleanup();
  await lifeMta?.cleanup();
});

const servers = (rows: ProcessRow[]) => rows.filter((r) => r.role === 'smtp_server');
/** Connections per SMTP server process, largest first. */
const counts = (rows: ProcessRow[]) => servers(rows).map((r) => r.connections!).sort((a, b) => b - a);

async function expectCounts(expected: number[], waiting = 0): Promise<ProcessRow[]> {
  let last: ProcessRow[] = [];
  try {
    return await waitFor(async () => {
      last = await mta.processes();
      const d = last.find((r) => r.role === 'dispatcher');
      return JSON.stringify(counts(last)) === JSON.stringify(expected) && d?.waiting === waiting ? last : null;
    }, { what: `connections ${JSON.stringify(expected)} and ${waiting} waiting` });
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`, { cause: err });
  }
}

async function openSession(): Promise<RawSession> {
  const s = await RawSession.open(ADDRESS, mta.port);
  sessions.push(s);
  return s;
}

test('MIN_PROCS, MIN_CONNS, MAX_PROCS and MAX_CONNS, connection by connection', async () => {
  await expectCounts([0]); // MIN_PROCS=1 at start
  const opened: RawSession[] = [];
  const steps = [[1], [2], [2, 1], [2, 2], [3, 2], [3, 3]];
  for (const expected of steps) {
    const s = await openSession();
    assert.match(await s.banner(), SERVER_GREETING);
    opened.push(s);
    await expectCounts(expected);
  }
  // Both processes hold MAX_CONNS: the next connection waits in the dispatcher, unanswered.
  const waiting = await openSession();
  const full = await expectCounts([3, 3], 1);
  assert.equal(waiting.received, '');
  assert.equal(servers(full).length, 2, 'never more than MAX_PROCS');
  // A session ends: the waiting connection gets its greeting.
  opened[0]!.close();
  assert.match(await waiting.banner(), SERVER_GREETING);
  await expectCounts([3, 3]);
});

test('a killed SMTP server process: its sessions end, the service goes on', async () => {
  const rows = await mta.processes();
  const victim = servers(rows)[0]!;
  process.kill(victim.pid, 'SIGKILL');
  await waitFor(() => !isAlive(victim.pid), { what: 'the process to die' });
  await waitFor(async () => !servers(await mta.processes()).some((r) => r.pid === victim.pid), { what: 'the dispatcher to forget it' });
  // Three sessions died with it; a new connection is served (by the other process or a new one).
  assert.match(await greeting(ADDRESS, mta.port), SERVER_GREETING);
  const s = await openSession();
  assert.match(await s.banner(), SERVER_GREETING);
  const after = await mta.processes();
  assert.ok(servers(after).length >= 1 && servers(after).length <= 2);
  assert.ok(servers(after).every((r) => r.connections! <= 3));
});

test('MAX_LIFE_CONNS retires a process once its sessions end; MIN_PROCS brings a new one', async () => {
  lifeMta = await MtaInstance.create({ address: '127.0.4.3', service: 'ACCEPT_MODE=HANDOFF\nMIN_PROCS=1\nMAX_PROCS=2\nMAX_LIFE_CONNS=2' });
  assert.equal((await lifeMta.cli('start-msg', [])).code, 0);
  const first = await waitFor(async () => (await lifeMta!.processes()).find((r) => r.role === 'smtp_server' && r.ready));
  const held = await RawSession.open('127.0.4.3', lifeMta.port);
  sessions.push(held);
  assert.match(await held.banner(), SERVER_GREETING);
  assert.match(await greeting('127.0.4.3', lifeMta.port), SERVER_GREETING);
  // Two connections served: it retires, but stays while the held session is open.
  const rows = await waitFor(async () => {
    const r = await lifeMta!.processes();
    return r.find((p) => p.pid === first.pid && p.retiring === true) && r.some((p) => p.role === 'smtp_server' && p.pid !== first.pid) ? r : null;
  }, { what: 'the first process to retire and a second to start' });
  assert.ok(isAlive(first.pid));
  assert.equal(rows.find((p) => p.pid === first.pid)?.connections, 1);
  // New connections go to the new process.
  assert.match(await greeting('127.0.4.3', lifeMta.port), SERVER_GREETING);
  held.close();
  await waitFor(() => !isAlive(first.pid), { what: 'the retired process to exit' });
});
