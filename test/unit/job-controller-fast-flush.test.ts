// The pure side of fast flush: which domains are fast-flush, the per-destination index, flush
// targets, and the way a flush is carried out (against a stand-in scheduler).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseImtaCnf } from '../../src/config/imta-cnf.js';
import type { Diagnostic, ImtaConfig } from '../../src/config/types.js';
import {
  FastFlushIndex,
  carryOutFlush,
  coversSubdomains,
  fastFlushDomainsOf,
  fastFlushPolicy,
  isFastFlushDomain,
  isFastFlushOff,
  parseFlushTarget,
  planFlush,
  type FlushHost,
  type FlushRef,
} from '../../src/job-controller/fast-flush.js';

function imta(text: string): ImtaConfig {
  const dir = mkdtempSync(join(tmpdir(), 'etrn-unit-'));
  try {
    const file = join(dir, 'imta.cnf');
    writeFileSync(file, text);
    const diagnostics: Diagnostic[] = [];
    const config = parseImtaCnf(file, diagnostics);
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
    return config;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CNF = `! customers on ETRN and the rest
localhost              $U%localhost@localhost
mx.example.net         $U%$D@localhost
customer.test          $U%$D@tcp-daemon
.branch.test           $U%$H$D@tcp_customers-daemon
*.wild.test            $U%$H.wild.test@tcp_customers-daemon
lmtp.test              $U%$D@tcp_lmtp-daemon
void.test              $U%$D@bitbucket-daemon
alias.test             $U%customer.test
blocked.test           $?no mail for blocked.test
[192.0.2.1]            $U%[$L]@tcp-daemon
.                      $U%$H@tcp-daemon
[]                     $U%[$L]@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon

tcp_customers smtp nomx
tcp_customers-daemon

tcp_lmtp lmtp smtp
tcp_lmtp-daemon

bitbucket
bitbucket-daemon
`;

test('policy from the rewrite rules: patterns routed to smtp channels, catch-alls and other channels left out', () => {
  const policy = fastFlushPolicy(null, imta(CNF));
  assert.equal(policy.source, 'rewrite-rules');
  assert.deepEqual([...policy.exact].sort(), ['customer.test', 'lmtp.test']);
  assert.deepEqual([...policy.parents].sort(), ['branch.test', 'wild.test']);
  assert.equal(isFastFlushDomain(policy, 'customer.test'), true);
  assert.equal(isFastFlushDomain(policy, 'CUSTOMER.test.'), true, 'case and a trailing dot do not matter');
  assert.equal(isFastFlushDomain(policy, 'mail.customer.test'), false, 'an exact pattern does not cover subdomains');
  assert.equal(isFastFlushDomain(policy, 'a.branch.test'), true);
  assert.equal(isFastFlushDomain(policy, 'x.y.branch.test'), true);
  assert.equal(isFastFlushDomain(policy, 'branch.test'), false, '.branch.test covers subdomains only');
  for (const d of ['mx.example.net', 'localhost', 'void.test', 'alias.test', 'blocked.test', 'elsewhere.test', '192.0.2.1']) {
    assert.equal(isFastFlushDomain(policy, d), false, d);
  }
  assert.equal(coversSubdomains(policy, 'branch.test'), true);
  assert.equal(coversSubdomains(policy, 'customer.test'), false);
});

test('policy from FAST_FLUSH_DOMAINS: a domain covers its subdomains, .domain only them; empty turns fast flush off', () => {
  const cnf = imta(CNF);
  const policy = fastFlushPolicy(['Other.test', '.sub.test', '@at.test', 'bad..name', '[192.0.2.1]'], cnf);
  assert.equal(policy.source, 'option');
  assert.equal(isFastFlushDomain(policy, 'other.test'), true);
  assert.equal(isFastFlushDomain(policy, 'mx.other.test'), true);
  assert.equal(isFastFlushDomain(policy, 'at.test'), true);
  assert.equal(isFastFlushDomain(policy, 'sub.test'), false);
  assert.equal(isFastFlushDomain(policy, 'a.sub.test'), true);
  assert.equal(isFastFlushDomain(policy, 'customer.test'), false, 'the option replaces the rules');
  assert.equal(isFastFlushOff(policy), false);
  const off = fastFlushPolicy([], cnf);
  assert.equal(isFastFlushOff(off), true);
  assert.equal(isFastFlushDomain(off, 'customer.test'), false);
  assert.deepEqual(fastFlushDomainsOf(policy, ['other.test', 'x.other.test', 'nope.test', 'OTHER.test']).sort(), ['other.test', 'x.other.test']);
});

const ref = (id: string, channel = 'tcp_local'): FlushRef => ({ id, channel, path: `/q/${channel}/ZY${id}.00` });

test('index: record, replace, remove; lookup of a domain and of @domain with its subdomains', () => {
  const index = new FastFlushIndex();
  index.record(ref('A'), ['customer.test']);
  index.record(ref('B'), ['customer.test', 'mail.customer.test']);
  index.record(ref('C'), ['deep.mail.customer.test']);
  index.record(ref('D'), ['other.test']);
  const ids = (entries: Array<{ ref: FlushRef }>) => entries.map((e) => e.ref.id).sort();
  assert.deepEqual(ids(index.lookup('customer.test', false)), ['A', 'B']);
  assert.deepEqual(ids(index.lookup('Customer.Test', true)), ['A', 'B', 'C']);
  assert.deepEqual(ids(index.lookup('mail.customer.test', true)), ['B', 'C']);
  assert.deepEqual(ids(index.lookup('test', true)), ['A', 'B', 'C', 'D']);
  assert.deepEqual(ids(index.lookup('nothing.test', true)), []);
  // B delivered to customer.test; still waiting for mail.customer.test.
  index.record({ ...ref('B'), path: '/q/tcp_local/ZXB.00' }, ['mail.customer.test']);
  assert.deepEqual(ids(index.lookup('customer.test', false)), ['A']);
  assert.equal(index.get('B')!.ref.path, '/q/tcp_local/ZXB.00');
  assert.equal(index.remove('C'), true);
  assert.equal(index.remove('C'), false);
  assert.deepEqual(ids(index.lookup('customer.test', true)), ['A', 'B']);
  index.record(ref('A'), []);
  assert.equal(index.get('A'), undefined, 'no domains left: removed');
  index.remove('B');
  index.remove('D');
  assert.equal(index.size, 0);
  assert.equal(index.domainCount, 0);
  assert.deepEqual(index.lookup('test', true), [], 'no parent entries left behind');
});

test('flush targets: all, #channel, @domain, domain; anything else is refused', () => {
  assert.deepEqual(parseFlushTarget(null), { kind: 'all' });
  assert.deepEqual(parseFlushTarget('  '), { kind: 'all' });
  assert.deepEqual(parseFlushTarget('#TCP_local'), { kind: 'channel', channel: 'tcp_local' });
  assert.deepEqual(parseFlushTarget('@Customer.test'), { kind: 'domain', domain: 'customer.test', subdomains: true });
  assert.deepEqual(parseFlushTarget('customer.test.'), { kind: 'domain', domain: 'customer.test', subdomains: false });
  for (const bad of ['bad target!', '#', '#a b', '@', 'a..b', '-a.test']) assert.equal(parseFlushTarget(bad), null, bad);
});

test('plan: fast for fast-flush domains (and @domain when its subdomains are covered), slow otherwise', () => {
  const policy = fastFlushPolicy(['customer.test', '.branch.test'], imta(CNF));
  const index = new FastFlushIndex();
  index.record(ref('A'), ['customer.test']);
  const plan = (t: string) => planFlush(parseFlushTarget(t)!, policy, index);
  const fast = plan('customer.test');
  assert.equal(fast.way, 'fast');
  assert.deepEqual(fast.way === 'fast' && fast.entries.map((e) => e.ref.id), ['A']);
  assert.equal(plan('@customer.test').way, 'fast');
  assert.equal(plan('x.branch.test').way, 'fast');
  assert.equal(plan('@branch.test').way, 'slow', 'branch.test itself is not indexed');
  assert.equal(plan('elsewhere.test').way, 'slow');
  assert.equal(plan('#tcp_local').way, 'channel');
  assert.equal(parseFlushTarget('') && planFlush(parseFlushTarget('')!, policy, index).way, 'all');
});

/** A scheduler stand-in: messages with channel, domains and state. */
function fakeHost(messages: Array<{ id: string; channel: string; domains: string[]; state: 'waiting' | 'due' | 'in-flight' }>, disk: Record<string, 'file' | 'gone'> = {}) {
  const log: string[] = [];
  let incomplete = false;
  const host: FlushHost & { log: string[]; setIncomplete(v: boolean): void } = {
    log,
    setIncomplete: (v) => (incomplete = v),
    makeDueNow(id) {
      const m = messages.find((x) => x.id === id);
      if (!m) return 'absent';
      if (m.state === 'in-flight') return 'in-flight';
      m.state = 'due';
      log.push(`due ${id}`);
      return 'made-due';
    },
    async admitNow(r) {
      if (disk[r.id] !== 'file') return 'gone';
      log.push(`admit ${r.id}`);
      messages.push({ id: r.id, channel: r.channel, domains: [], state: 'due' });
      return 'admitted';
    },
    makeDue(match) {
      let n = 0;
      for (const m of messages) if (m.state === 'waiting' && match(m)) {
        m.state = 'due';
        log.push(`due ${m.id}`);
        n++;
      }
      return n;
    },
    countInFlight: (match) => messages.filter((m) => m.state === 'in-flight' && match(m)).length,
    countKnown: (match) => messages.filter((m) => match(m)).length,
    hasChannel: (name) => ['tcp_local', 'tcp_other'].includes(name),
    get incomplete() {
      return incomplete;
    },
    rescan: () => void log.push('rescan'),
    kick: () => void log.push('kick'),
  };
  return { host, messages };
}

test('carrying out: fast flush touches exactly the indexed messages, admits ones only on disk, reports stale ones', async () => {
  const policy = fastFlushPolicy(['customer.test'], imta(CNF));
  const index = new FastFlushIndex();
  index.record(ref('A'), ['customer.test']);
  index.record(ref('B'), ['customer.test']);
  index.record(ref('C'), ['customer.test']);
  index.record(ref('GONE'), ['customer.test']);
  const { host, messages } = fakeHost(
    [
      { id: 'A', channel: 'tcp_local', domains: ['customer.test'], state: 'waiting' },
      { id: 'B', channel: 'tcp_local', domains: ['customer.test'], state: 'in-flight' },
      { id: 'X', channel: 'tcp_local', domains: ['other.test'], state: 'waiting' },
    ],
    { C: 'file', GONE: 'gone' },
  );
  const r = await carryOutFlush(planFlush(parseFlushTarget('customer.test')!, policy, index), host);
  assert.equal(r.code, 250);
  assert.equal(r.count, 3, 'A made due, B in flight, C admitted from disk');
  assert.deepEqual(r.stale, ['GONE']);
  assert.equal(messages.find((m) => m.id === 'X')!.state, 'waiting', 'other destinations are not touched');
  assert.deepEqual(host.log, ['due A', 'admit C', 'kick']);

  const none = await carryOutFlush(planFlush(parseFlushTarget('@customer.test')!, policy, new FastFlushIndex()), host);
  assert.equal(none.code, 251);
  assert.equal(none.count, 0);
});

test('carrying out: a domain outside the fast-flush list is refused to ETRN (459, nothing retried); the operator gets that domain only', async () => {
  const policy = fastFlushPolicy(['customer.test'], imta(CNF));
  const index = new FastFlushIndex();
  const mk = () =>
    fakeHost([
      { id: 'A', channel: 'tcp_local', domains: ['customer.test'], state: 'waiting' },
      { id: 'X', channel: 'tcp_local', domains: ['other.test'], state: 'waiting' },
      { id: 'Y', channel: 'tcp_other', domains: ['other.test', 'third.test'], state: 'waiting' },
    ]);
  const etrn = { origin: 'etrn', fastIndexComplete: true } as const;
  let { host, messages } = mk();
  for (const target of ['other.test', 'nobody.test', '@other.test']) {
    const r = await carryOutFlush(planFlush(parseFlushTarget(target)!, policy, index), host, etrn);
    assert.deepEqual([r.ok, r.code, r.reason, r.count], [false, 459, 'service unavailable', 0], target);
  }
  assert.ok(messages.every((m) => m.state === 'waiting'), 'nothing is retried');
  assert.deepEqual(host.log, [], 'not even a kick');

  const r = await carryOutFlush(planFlush(parseFlushTarget('other.test')!, policy, index), host);
  assert.equal(r.code, 253);
  assert.equal(r.count, 2);
  assert.deepEqual(messages.map((m) => m.state), ['waiting', 'due', 'due'], 'only the messages for other.test');
  ({ host, messages } = mk());
  const none = await carryOutFlush(planFlush(parseFlushTarget('nobody.test')!, policy, index), host);
  assert.equal(none.code, 251);
  assert.ok(messages.every((m) => m.state === 'waiting'));
  ({ host } = mk());
  host.setIncomplete(true);
  const unknown = await carryOutFlush(planFlush(parseFlushTarget('nobody.test')!, policy, index), host);
  assert.equal(unknown.code, 252, 'not "no messages waiting" when the scheduler does not hold them all');
  assert.ok(host.log.includes('rescan'));
});

test('carrying out: replies say only what is known (a fast-flush index being rebuilt, a scheduler that overflowed)', async () => {
  const policy = fastFlushPolicy(['customer.test'], imta(CNF));
  const { host, messages } = fakeHost([{ id: 'A', channel: 'tcp_local', domains: ['customer.test'], state: 'waiting' }]);
  // Not in the fast-flush index (its journal line was lost), the index is being rebuilt: the scheduler's copy is found.
  const rebuilding = await carryOutFlush(planFlush(parseFlushTarget('customer.test')!, policy, new FastFlushIndex()), host, { origin: 'etrn', fastIndexComplete: false });
  assert.equal(rebuilding.code, 252);
  assert.equal(rebuilding.count, 1);
  assert.equal(messages[0]!.state, 'due');
  host.setIncomplete(true);
  const channel = await carryOutFlush(planFlush(parseFlushTarget('#tcp_other')!, policy, new FastFlushIndex()), host);
  assert.equal(channel.code, 252, 'a channel with none indexed while files wait on disk');
  const all = await carryOutFlush(planFlush(parseFlushTarget(null)!, policy, new FastFlushIndex()), host);
  assert.doesNotMatch(all.text, /no messages waiting/);
});

test('carrying out: #channel of a channel that does not exist is "no such channel" (459), nothing retried', async () => {
  const policy = fastFlushPolicy(null, imta(CNF));
  const { host, messages } = fakeHost([{ id: 'A', channel: 'tcp_local', domains: ['a.test'], state: 'waiting' }]);
  const r = await carryOutFlush(planFlush(parseFlushTarget('#nosuch')!, policy, new FastFlushIndex()), host);
  assert.deepEqual([r.ok, r.code, r.reason], [false, 459, 'no such channel']);
  assert.match(r.text, /no such channel: nosuch/);
  assert.equal(messages[0]!.state, 'waiting');
});

test('carrying out: #channel and all', async () => {
  const policy = fastFlushPolicy(null, imta(CNF));
  const { host, messages } = fakeHost([
    { id: 'A', channel: 'tcp_local', domains: ['a.test'], state: 'waiting' },
    { id: 'B', channel: 'tcp_other', domains: ['b.test'], state: 'waiting' },
    { id: 'C', channel: 'tcp_other', domains: ['b.test'], state: 'in-flight' },
  ]);
  const ch = await carryOutFlush(planFlush(parseFlushTarget('#tcp_other')!, policy, new FastFlushIndex()), host);
  assert.equal(ch.code, 253);
  assert.equal(ch.count, 2);
  assert.equal(messages[0]!.state, 'waiting');
  const all = await carryOutFlush(planFlush(parseFlushTarget(null)!, policy, new FastFlushIndex()), host);
  assert.equal(all.code, 250);
  assert.equal(all.count, 3, 'A made due, B due already, C in flight');
  assert.ok(messages.every((m) => m.state !== 'waiting'));
});
