// Live reload under load: four clients open SMTP sessions back to back while imta.cnf changes.
// blocked.test is refused ($?) at first and routed to the local channel after the edit: every
// session that starts after the watcher reports the reload applied gets 250 for it, every one
// that started before the edit gets the refusal, and no session fails (no 4xx, no reset, every
// message 250). A broken edit after that is rejected and sessions keep the last good rule.
// Then MAX_PROCS is raised in dispatcher.cnf: more SMTP server processes start, no restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { waitFor } from '../helpers/instance.js';
import type { MtaInstance, ProcessRow } from '../helpers/running-instance.js';
import { SmtpTalk, aliceMessages, settledReloads, startMta, watcherStatus, type SmtpReply } from './reload-harness.js';
import { queuedMessages } from '../helpers/held-instance.js';

const ADDRESS = '127.0.16.1';
const WORKERS = 4;
/** Sessions to see finished in each phase (before the edit, after it, after the broken edit). */
const PER_PHASE = 40;
const REFUSAL = 'Mail to blocked.test is not accepted';

/** blocked.test refused or routed to `l`; load.test parked in the hold channel (never delivered);
 * tcp_local (the SMTP service's channel) is there but nothing routes to it. */
function imtaCnf(blockedRule: string, comment: string): string {
  return `! ${comment}
localhost            $U%localhost@localhost
${blockedRule}
load.test            $U%$D@hold-daemon

l
localhost

hold
hold-daemon

tcp_local smtp mx
tcp-daemon
`;
}
const REFUSING = imtaCnf(`blocked.test         $?${REFUSAL}`, 'refusing blocked.test');
const ACCEPTING = imtaCnf('blocked.test         $U%localhost@localhost', 'blocked.test to the local channel');
/** Would refuse blocked.test again, but `localhost is here` is not a host line: rejected. */
const BROKEN = REFUSING.replace('l\nlocalhost\n', 'l\nlocalhost is here\n');

/** SMTP: two processes at most, each "busy enough" at two sessions. */
const dispatcherCnf = (port: number, maxProcs: number) =>
  `[SERVICE=SMTP]\nPORT=${port}\nINTERFACE_ADDRESS=${ADDRESS}\nMIN_PROCS=1\nMAX_PROCS=${maxProcs}\nMIN_CONNS=2\nMAX_CONNS=10\n`;

let mta: MtaInstance;

before(async () => {
  mta = await startMta({ address: ADDRESS, imta: REFUSING, service: 'MIN_PROCS=1\nMAX_PROCS=2\nMIN_CONNS=2\nMAX_CONNS=10' });
});
after(async () => mta?.cleanup());

interface SessionRecord {
  /** performance.now() just before connecting. */
  startedAt: number;
  /** When the greeting came: the server session (and the rules it uses) exists from then on. */
  greetedAt: number;
  endedAt: number;
  blocked: SmtpReply | null;
  queued: SmtpReply | null;
  /** Anything other than the expected replies: a 4xx, a reset, a timeout. */
  failure: string | null;
}

async function expectCode(talk: SmtpTalk, line: string | null, code: number): Promise<SmtpReply> {
  const reply = line === null ? await talk.reply() : await talk.command(line);
  if (reply.code !== code) throw new Error(`${line ?? 'greeting'}: expected ${code}, got ${reply.text}`);
  return reply;
}

/** One session: RCPT to blocked.test (refused or accepted, by the rules in force), one message to load.test. */
async function oneSession(n: number): Promise<SessionRecord> {
  const record: SessionRecord = { startedAt: performance.now(), greetedAt: Infinity, endedAt: 0, blocked: null, queued: null, failure: null };
  let talk: SmtpTalk | null = null;
  try {
    talk = await SmtpTalk.open(ADDRESS, mta.port);
    await expectCode(talk, null, 220);
    record.greetedAt = performance.now();
    await expectCode(talk, 'EHLO load.client.test', 250);
    await expectCode(talk, 'MAIL FROM:<load@client.test>', 250);
    record.blocked = await talk.command('RCPT TO:<alice@blocked.test>');
    if (record.blocked.code !== 250 && !(record.blocked.code === 550 && record.blocked.text.includes(REFUSAL))) {
      throw new Error(`RCPT blocked.test: ${record.blocked.text}`);
    }
    await expectCode(talk, 'RCPT TO:<sink@load.test>', 250);
    await expectCode(talk, 'DATA', 354);
    talk.write(`From: load@client.test\r\nTo: sink@load.test\r\nSubject: session ${n}\r\nMessage-ID: <load-${n}@client.test>\r\n\r\nsession ${n}\r\n`);
    record.queued = await expectCode(talk, '.', 250);
    await expectCode(talk, 'QUIT', 221);
  } catch (err) {
    record.failure = (err as Error).message;
  } finally {
    talk?.close();
    record.endedAt = performance.now();
  }
  return record;
}

/** WORKERS clients running sessions back to back until stopped (or 60 s, whichever first). */
function startLoad(): { sessions: SessionRecord[]; stop: () => Promise<void> } {
  const sessions: SessionRecord[] = [];
  let stopped = false;
  const hardStop = performance.now() + 60_000;
  let n = 0;
  const worker = async () => {
    while (!stopped && performance.now() < hardStop) sessions.push(await oneSession(n++));
  };
  const workers = Array.from({ length: WORKERS }, worker);
  return {
    sessions,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

const finishedSince = (sessions: SessionRecord[], t: number) => sessions.filter((s) => s.startedAt > t).length;

test('under load, sessions after the reload route by the new rule; none fails; a broken edit changes nothing', { timeout: 90_000 }, async () => {
  const dispatcherPid = await mta.pidOf('dispatcher');
  const watcherPid = await mta.pidOf('watcher');
  const reloadsBefore = await settledReloads(mta, () => true, 'a quiet watcher');
  const load = startLoad();
  let editAt = 0;
  let appliedAt = 0;
  let rejectedAt = 0;
  try {
    await waitFor(() => load.sessions.length >= PER_PHASE, { timeoutMs: 30_000, what: `${PER_PHASE} sessions under the first rules` });

    editAt = performance.now();
    mta.inst.write('etc/imta.cnf', ACCEPTING);
    await settledReloads(mta, (r) => r.watched > reloadsBefore.watched, 'the edit to be applied');
    appliedAt = performance.now();
    await waitFor(() => finishedSince(load.sessions, appliedAt) >= PER_PHASE, { timeoutMs: 30_000, what: `${PER_PHASE} sessions after the reload` });

    mta.inst.write('etc/imta.cnf', BROKEN);
    await settledReloads(mta, (r) => r.rejected > reloadsBefore.rejected, 'the broken edit to be rejected');
    rejectedAt = performance.now();
    await waitFor(() => finishedSince(load.sessions, rejectedAt) >= PER_PHASE, { timeoutMs: 30_000, what: `${PER_PHASE} sessions after the broken edit` });
  } finally {
    await load.stop();
  }
  const sessions = load.sessions;

  const failures = sessions.filter((s) => s.failure !== null).map((s) => s.failure);
  assert.deepEqual(failures, [], `${failures.length} of ${sessions.length} sessions failed`);

  const before = sessions.filter((s) => s.greetedAt < editAt);
  const after = sessions.filter((s) => s.startedAt > appliedAt);
  const afterBroken = sessions.filter((s) => s.startedAt > rejectedAt);
  assert.ok(before.length >= PER_PHASE && afterBroken.length >= PER_PHASE, `phases: ${before.length} before, ${after.length} after, ${afterBroken.length} after the broken edit`);
  assert.deepEqual(before.filter((s) => s.blocked?.code !== 550).map((s) => s.blocked?.text), [], 'sessions greeted before the edit: refused by $?, the rules they started with');
  assert.deepEqual(after.filter((s) => s.blocked?.code !== 250).map((s) => s.blocked?.text), [], 'sessions after the reload (and after the broken edit): accepted');
  // Sessions that overlapped the reload got one answer or the other, never an error (checked above).

  // Routed by the new rule: each accepted blocked.test recipient reaches alice's Maildir
  // through the l channel; every message's load.test copy is parked in the hold channel.
  const acceptedBlocked = sessions.filter((s) => s.blocked?.code === 250).length;
  await waitFor(() => aliceMessages(mta).length === acceptedBlocked, { timeoutMs: 30_000, what: `${acceptedBlocked} messages in mailbox/alice` });
  const held = (await queuedMessages(mta)).filter((m) => m.from === 'load@client.test');
  assert.equal(held.length, sessions.length, 'one held message per session');
  assert.ok(held.every((m) => m.channel === 'hold' && m.recipients.length === 1 && m.recipients[0] === 'sink@load.test'), JSON.stringify(held.slice(0, 3)));

  const reloads = (await watcherStatus(mta)).reloads;
  assert.equal(reloads.watched, reloadsBefore.watched + 1, 'one applied reload');
  assert.equal(reloads.rejected, reloadsBefore.rejected + 1, 'one rejected reload');
  assert.equal(await mta.pidOf('dispatcher'), dispatcherPid, 'the dispatcher was not restarted');
  assert.equal(await mta.pidOf('watcher'), watcherPid);
});

const smtpServers = (rows: ProcessRow[]) => rows.filter((r) => r.role === 'smtp_server' && r.service === 'SMTP');

test('a raised MAX_PROCS takes effect without a restart: more SMTP server processes once every one is busy', { timeout: 60_000 }, async () => {
  const dispatcherPid = await mta.pidOf('dispatcher');
  // The last good imta.cnf is the accepting one; the broken file is still on disk: fix it so the
  // dispatcher.cnf edit below is not refused for it.
  mta.inst.write('etc/imta.cnf', ACCEPTING);
  await settledReloads(mta, () => true, 'a quiet watcher');
  // The processes that the load retired (MAX_LIFE_CONNS) are gone.
  await waitFor(async () => smtpServers(await mta.processes()).every((r) => r.connections === 0), { timeoutMs: 20_000, what: 'idle SMTP server processes' });

  const open: SmtpTalk[] = [];
  const openSessions = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const talk = await SmtpTalk.open(ADDRESS, mta.port);
      open.push(talk);
      assert.equal((await talk.reply()).code, 220);
    }
  };
  try {
    // MIN_CONNS 2 × MAX_PROCS 2 = 4: six sessions are more, and still two processes at most.
    await openSessions(6);
    const held = smtpServers(await mta.processes());
    assert.ok(held.length <= 2, `MAX_PROCS=2 but ${held.length} processes: ${JSON.stringify(held)}`);
    assert.equal(held.reduce((n, r) => n + (r.connections ?? 0), 0), 6);

    const before = (await watcherStatus(mta)).reloads.watched;
    mta.inst.write('etc/dispatcher.cnf', dispatcherCnf(mta.port, 6));
    await settledReloads(mta, (r) => r.watched > before, 'the dispatcher.cnf edit to be applied');

    // New processes start once every process holds ≥ MIN_CONNS. With shared accept the kernel
    // chooses which process takes a session (one may hold nine and the other one), so sessions
    // are opened until that is so: at most 2 × MAX_CONNS in all.
    const heldBy = (rows: ProcessRow[]) => rows.reduce((n, r) => n + (r.connections ?? 0), 0);
    for (;;) {
      const rows = smtpServers(await mta.processes());
      if (rows.length > 2 || (heldBy(rows) === open.length && rows.every((r) => (r.connections ?? 0) >= 2))) break;
      assert.ok(open.length < 20, `20 sessions and still ${JSON.stringify(rows)}`);
      await openSessions(1);
    }
    const grown = await waitFor(
      async () => {
        const rows = smtpServers(await mta.processes());
        return rows.length > 2 && heldBy(rows) === open.length ? rows : null;
      },
      { timeoutMs: 15_000, what: `more than two SMTP server processes holding the ${open.length} sessions` },
    );
    assert.ok(grown.length <= 6, `MAX_PROCS=6 but ${grown.length} processes`);
    assert.equal(await mta.pidOf('dispatcher'), dispatcherPid, 'the dispatcher was not restarted');

    // Every session, old and new, is alive.
    for (const talk of open) assert.equal((await talk.command('NOOP')).code, 250);
    for (const talk of open) assert.equal((await talk.command('QUIT')).code, 221);
  } finally {
    for (const talk of open) talk.close();
  }
});
