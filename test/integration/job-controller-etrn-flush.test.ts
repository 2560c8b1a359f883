// Fast ETRN end to end on a running instance: a customer domain whose MX is down, mail for it
// and for another domain deferred with a one-hour backoff, the index surviving a restart of the
// job controller, the MX coming up, and ETRN delivering exactly the customer's mail within
// seconds while the other domain's MX sees no new connection; then the other replies: 251 for
// a fast-flush domain with nothing waiting, Postfix's 459 (nothing retried) for a domain outside
// the fast-flush list, ETRN keeping to the host-retry window where the operator's flush does not,
// and `imsimta flush` using the same request. One job at a time (JOB_LIMIT=1): one delivery
// thread, so one host reachability cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, startSmtpPeer, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { waitFor } from '../helpers/instance.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { createEtrnInstance, etrn, jobController, mailLog, sendMail, startInstance } from './etrn-fixture.js';
import { fastFlushJournalPath } from '../../src/job-controller/fast-flush-store.js';

const SERVER = '127.0.10.11';
const CLIENT = '127.0.10.12';
const DNS = '127.0.10.53';
const CUSTOMER_MX = '127.0.10.21';
const OTHER_MX = '127.0.10.31';
const LATE_MX = '127.0.10.22';

let dns: SimDns;
let other: SmtpPeer;
let customer: SmtpPeer | null = null;
let late: SmtpPeer | null = null;
let mta: MtaInstance;

before(async () => {
  dns = await startDnsServer({
    host: DNS,
    records: {
      'customer.test': { mx: [{ exchange: 'mx.customer.test', preference: 10 }] },
      'branch.customer.test': { mx: [{ exchange: 'mx.customer.test', preference: 10 }] },
      'mx.customer.test': { a: [CUSTOMER_MX] },
      'other.test': { mx: [{ exchange: 'mx.other.test', preference: 10 }] },
      'mx.other.test': { a: [OTHER_MX] },
      'late.test': { mx: [{ exchange: 'mx.late.test', preference: 10 }] },
      'mx.late.test': { a: [LATE_MX] },
    },
  });
  // The other domain's MX is up but busy: every session is turned away with 421.
  other = await startSmtpPeer({ host: OTHER_MX, greetingReply: { code: 421, message: '4.3.2 busy, try later' } });
  mta = await createEtrnInstance({
    address: SERVER,
    dnsServer: dns.server,
    mxPort: other.port,
    // Relay customers, so fast-flush domains by default (Postfix's $relay_domains).
    rules: ['customer.test          $U%$D@tcp-daemon', '.customer.test         $U%$H$D@tcp-daemon', 'quiet.test             $U%$D@tcp-daemon', 'late.test              $U%$D@tcp-daemon'].join('\n'),
    jobControllerCnf: '[POOL=DEFAULT]\nJOB_LIMIT=1\n',
  });
  // other.test's MX is a busy host turned away per session, not a destination asking to slow
  // down: its 421 is no throttle here (etc/shaping.cnf), so each message tries it whenever it comes.
  mta.inst.write('etc/shaping.cnf', 'THROTTLE_IGNORE=busy\n');
  await startInstance(mta);
});

after(async () => {
  await mta?.cleanup();
  await customer?.close();
  await late?.close();
  await other?.close();
  await dns?.close();
});

function readJobControllerLog(): Array<Record<string, unknown>> {
  const path = join(mta.root, 'log', 'job_controller.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

const deferred = (recipient: string) => mailLog(mta).filter((r) => r.event === 'Q' && r.recipient === recipient).length;
const delivered = (recipient: string) => mailLog(mta).filter((r) => r.event === 'D' && r.recipient === recipient).length;

test('mail for the customer (MX down) and for other.test (MX says 421) is deferred for an hour', async () => {
  await sendMail(mta, CLIENT, [
    { from: 'a@sender.test', to: ['one@customer.test'], subject: 'c1' },
    { from: 'a@sender.test', to: ['one@customer.test'], subject: 'c2' },
    { from: 'a@sender.test', to: ['two@branch.customer.test'], subject: 'c3' },
    { from: 'a@sender.test', to: ['x@other.test'], subject: 'o1' },
    { from: 'a@sender.test', to: ['x@other.test'], subject: 'o2' },
  ]);
  await waitFor(() => deferred('one@customer.test') === 2 && deferred('two@branch.customer.test') === 1 && deferred('x@other.test') === 2, {
    timeoutMs: 20_000,
    what: 'five deferrals in mail.log',
  });
  const dir = await mta.imsimta(['qm', 'directory', '--json', 'tcp_local']);
  assert.equal(dir.code, 0, dir.stderr);
  const rows = dir.stdout.trim().split('\n').map((l) => JSON.parse(l) as { recipients: string[]; attempts: number; next_attempt: string | null });
  assert.equal(rows.length, 5);
  for (const row of rows) {
    const wait = Date.parse(row.next_attempt ?? '') - Date.now();
    if (row.attempts === 1) {
      assert.ok(wait > 50 * 60_000, `next attempt an hour away: ${row.next_attempt}`);
    } else {
      // Its MX was found down by an attempt just before: not tried, so no try counted, and due
      // again when SMTP_HOST_RETRY (5 minutes) is over.
      assert.equal(row.attempts, 0, JSON.stringify(row));
      assert.ok(row.recipients.every((r) => r.endsWith('customer.test')), 'only the customer MX refuses connections');
      assert.ok(wait > 0 && wait <= 5 * 60_000, `next attempt when the host may be tried again: ${row.next_attempt}`);
    }
  }
  assert.equal(rows.filter((r) => r.recipients[0] === 'x@other.test' && r.attempts === 1).length, 2, 'the busy MX (421) was tried for both');
  assert.ok(existsSync(fastFlushJournalPath(mta.root)), 'the fast-flush journal is written');
});

test('ETRN for a fast-flush domain with nothing waiting: 251, nothing retried', async () => {
  const before = other.connections.length;
  const r = await etrn(mta, CLIENT, 'quiet.test');
  assert.match(r.text, /^251 2\.0\.0 OK, no messages waiting for node quiet\.test$/);
  const status = await jobController(mta, { op: 'status' });
  const tcp = (status?.channels as Record<string, { ready: number; inFlight: number }>).tcp_local!;
  assert.equal(tcp.ready + tcp.inFlight, 0, 'nothing made due');
  assert.equal(other.connections.length, before);
});

test('the index survives a restart of the job controller; the MX comes up; ETRN @customer.test delivers exactly its mail within seconds', async () => {
  const oldPid = await mta.pidOf('job_controller');
  const restarted = await mta.imsimta(['restart', 'job_controller'], 90_000);
  assert.equal(restarted.code, 0, restarted.stderr);
  const newPid = await waitFor(async () => {
    const pid = await mta.pidOf('job_controller');
    return pid && pid !== oldPid ? pid : null;
  }, { timeoutMs: 20_000, what: 'a new job controller' });
  assert.notEqual(newPid, oldPid);
  // The new job controller replayed the journal: the three customer messages, before any queue scan.
  const loaded = await waitFor(() => readJobControllerLog().find((r) => r.msg === 'fast-flush index loaded' && r.pid === newPid), { what: 'the journal load record' });
  assert.equal(loaded.entries, 3);
  const status = await jobController(mta, { op: 'status' });
  assert.equal((status?.fast_flush as { messages: number }).messages, 3);

  customer = await startSmtpPeer({ host: CUSTOMER_MX, port: other.port });
  const otherConnections = other.connections.length;
  const started = Date.now();
  const r = await etrn(mta, CLIENT, '@customer.test');
  assert.match(r.text, /^250 2\.0\.0 Queuing for node @customer\.test started$/);
  await waitFor(() => customer!.deliveredRecipients().length === 3, { timeoutMs: 10_000, what: 'the three customer messages at its MX' });
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds < 10, `delivered in ${seconds} s`);
  assert.deepEqual(customer.deliveredRecipients().sort(), ['one@customer.test', 'one@customer.test', 'two@branch.customer.test']);
  await waitFor(() => delivered('one@customer.test') === 2 && delivered('two@branch.customer.test') === 1, { what: 'D records' });

  // Nothing else was tried: other.test's MX saw no connection, its messages still wait with one attempt.
  assert.equal(other.connections.length, otherConnections);
  assert.equal(deferred('x@other.test'), 2);
  const dir = await mta.imsimta(['qm', 'directory', '--json', 'tcp_local']);
  const rows = dir.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { recipients: string[]; attempts: number });
  assert.deepEqual(rows.map((x) => [x.recipients, x.attempts]), [[['x@other.test'], 1], [['x@other.test'], 1]]);

  // Delivered messages left the index: a second ETRN finds nothing.
  const again = await etrn(mta, CLIENT, 'customer.test');
  assert.equal(again.code, 251, again.text);
});

test('ETRN for a domain outside the fast-flush list: 459 4.3.0 <domain>: service unavailable, and nothing is retried', async () => {
  const before = other.connections.length;
  for (const domain of ['other.test', 'not-a-customer.test']) {
    const r = await etrn(mta, CLIENT, domain);
    assert.equal(r.text, `459 4.3.0 <${domain}>: service unavailable`);
  }
  // The flush is decided before the reply: nothing was made due.
  const status = await jobController(mta, { op: 'status' });
  const tcp = (status?.channels as Record<string, { ready: number; inFlight: number }>).tcp_local!;
  assert.equal(tcp.ready + tcp.inFlight, 0, 'nothing made due');
  assert.equal(other.connections.length, before, 'other.test MX not contacted');
  assert.equal(deferred('x@other.test'), 2);
});

test('ETRN right after a failed attempt keeps to the host-retry window (no connection, no try counted); the operator\'s flush tries at once', async () => {
  // The attempt marks mx.late.test unreachable in the delivery job's host cache (SMTP_HOST_RETRY,
  // 5 minutes). ETRN, which anyone may send, does not make the job try it again before that.
  await sendMail(mta, CLIENT, [{ from: 'a@sender.test', to: ['someone@late.test'], subject: 'l1' }]);
  await waitFor(() => deferred('someone@late.test') === 1, { timeoutMs: 10_000, what: 'the deferral' });
  late = await startSmtpPeer({ host: LATE_MX, port: other.port });
  const r = await etrn(mta, CLIENT, 'late.test');
  assert.equal(r.code, 250, r.text);
  await waitFor(() => deferred('someone@late.test') === 2, { timeoutMs: 10_000, what: 'the flushed attempt' });
  assert.equal(late.connections.length, 0, 'the MX found down a moment ago is not tried again');
  assert.match(mailLog(mta).filter((x) => x.event === 'Q' && x.recipient === 'someone@late.test')[1]!.status, /not tried again until/);
  const dir = await mta.imsimta(['qm', 'directory', '--json', 'tcp_local']);
  const row = dir.stdout.trim().split('\n').map((l) => JSON.parse(l) as { recipients: string[]; attempts: number; next_attempt: string }).find((x) => x.recipients[0] === 'someone@late.test')!;
  assert.equal(row.attempts, 1, 'the flush did not count as a try');
  assert.ok(Date.parse(row.next_attempt) - Date.now() > 50 * 60_000, `its schedule is kept: ${row.next_attempt}`);
  // The operator knows better: imsimta flush makes the jobs forget the hosts they found down.
  const flush = await mta.imsimta(['flush', 'late.test']);
  assert.equal(flush.code, 0, flush.stderr);
  await waitFor(() => late!.deliveredRecipients().length === 1, { timeoutMs: 10_000, what: 'delivery at the MX that came up' });
});

test('imsimta flush uses the same request: domain, #channel, and a bad target', async () => {
  const quiet = await mta.imsimta(['flush', '--json', 'customer.test']);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.deepEqual({ ...JSON.parse(quiet.stdout), text: undefined }, { ok: true, code: 251, count: 0, way: 'fast', text: undefined });
  const slow = await mta.imsimta(['flush', '--json', 'elsewhere.test']);
  assert.equal(JSON.parse(slow.stdout).way, 'slow');
  assert.equal(JSON.parse(slow.stdout).code, 251, 'the operator may name any destination: none waits for this one');
  const channel = await mta.imsimta(['flush', '--json', '#tcp_local']);
  assert.equal(channel.code, 0, channel.stderr);
  assert.equal(JSON.parse(channel.stdout).count, 2);
  const bad = await mta.imsimta(['flush', 'no good!']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /bad flush target/);
  // A channel that does not exist is said so, not "no messages waiting".
  const nosuch = await mta.imsimta(['flush', '#nosuch']);
  assert.notEqual(nosuch.code, 0);
  assert.match(nosuch.stderr, /no such channel: nosuch/);
  assert.doesNotMatch(nosuch.stdout + nosuch.stderr, /no messages waiting/);
});
