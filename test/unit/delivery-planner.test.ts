// The delivery planner: a recipient's first usable host (fail-over, per-recipient availability,
// smart hosts and nomx targets), what waits for a host (messages never mixed, in the order they
// came, 100 RCPT per transaction, a message that is not looked up whole yet held back), and the
// fan-out's policy of connections per host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstUsableTarget, HostBacklog } from '../../src/delivery/planner.js';
import { wantsAnotherConnection } from '../../src/delivery/fanout-policy.js';
import { orderTargets, targetKey, type ResolvedMx, type Target } from '../../src/delivery/mx.js';

const mx = (name: string, ip: string, preference = 10): ResolvedMx => ({ name, preference, addresses: [ip] });
const targetsOf = (...hosts: ResolvedMx[]): Target[] => orderTargets(hosts, { shuffle: false, rank: () => 0, port: 25 });

const ISP1 = mx('mx.isp1.test', '192.0.2.1');
const ISP2 = mx('mx.isp2.test', '192.0.2.2');
const never = () => false;
const always = () => true;

/** Places recipients (id → its targets) the way the fan-out does: per host key, the first usable target's. */
function place(list: Array<{ id: number; message: number; targets: Target[] }>, unavailable: (t: Target, id: number) => boolean) {
  const hosts = new Map<string, { target: Target; backlog: HostBacklog }>();
  const exhausted: number[] = [];
  for (const r of list) {
    const t = firstUsableTarget(r.targets, (x) => unavailable(x, r.id));
    if (!t) {
      exhausted.push(r.id);
      continue;
    }
    let h = hosts.get(t.key);
    if (!h) hosts.set(t.key, (h = { target: t, backlog: new HostBacklog() }));
    h.backlog.add(r.message, r.id);
  }
  return { hosts: [...hosts.values()], exhausted };
}

function recipients(domains: Array<{ targets: Target[]; count: number }>, message = 0, startId = 0) {
  const list: Array<{ id: number; message: number; targets: Target[] }> = [];
  let id = startId;
  for (const d of domains) for (let i = 0; i < d.count; i++) list.push({ id: id++, message, targets: d.targets });
  return list;
}

function drain(backlog: HostBacklog, max = 100, ready: (m: number) => boolean = always) {
  const out: Array<[number, number[]]> = [];
  for (let tx = backlog.next(max, ready, never); tx; tx = backlog.next(max, ready, never)) out.push([tx.message, tx.recipients]);
  return out;
}

test('recipients of different domains with the same primary MX host wait together and go in one transaction', () => {
  const plan = place(
    recipients([
      { targets: targetsOf(ISP1), count: 3 }, // a.test
      { targets: targetsOf(ISP1, { ...ISP2, preference: 20 }), count: 2 }, // b.test, same primary
      { targets: targetsOf(ISP2), count: 4 }, // c.test
    ]),
    never,
  );
  assert.deepEqual(plan.hosts.map((h) => [h.target.ip, drain(h.backlog).map(([, ids]) => ids.length)]), [
    ['192.0.2.1', [5]],
    ['192.0.2.2', [4]],
  ]);
  assert.deepEqual(plan.exhausted, []);
});

test('piggybacking is by host address: two MX names for one address are one target', () => {
  const alias = mx('mail.other-name.test', '192.0.2.1');
  const plan = place(recipients([{ targets: targetsOf(ISP1), count: 2 }, { targets: targetsOf(alias), count: 2 }]), never);
  assert.equal(plan.hosts.length, 1);
  assert.deepEqual(drain(plan.hosts[0]!.backlog).map(([, ids]) => ids.length), [4]);
});

test('at most rcptPerTransaction recipients per transaction, messages never mixed, messages in the order they came', () => {
  const b = new HostBacklog();
  for (let i = 0; i < 30; i++) b.add(0, 1000 + i);
  for (let i = 0; i < 250; i++) b.add(1, i);
  assert.equal(b.size, 280);
  assert.equal(b.transactionsWaiting(100, always), 4);
  assert.deepEqual(drain(b).map(([m, ids]) => [m, ids.length]), [
    [0, 30],
    [1, 100],
    [1, 100],
    [1, 50],
  ]);
  assert.equal(b.size, 0);
  const single = new HostBacklog();
  for (let i = 0; i < 3; i++) single.add(0, i);
  assert.equal(drain(single, 1).length, 3, 'single: one copy per recipient');
});

test('a message not looked up whole waits; later messages go first; recipients decided meanwhile are dropped; a transaction put back goes first again', () => {
  const b = new HostBacklog();
  b.add(0, 1);
  b.add(1, 2);
  b.add(0, 3);
  const notYet = (m: number) => m !== 0;
  assert.equal(b.transactionsWaiting(100, notYet), 1);
  assert.deepEqual(b.next(100, notYet, never), { message: 1, recipients: [2] });
  assert.equal(b.next(100, notYet, never), null, 'message 0 is still being looked up');
  assert.equal(b.size, 2);
  const tx = b.next(100, always, (id) => id === 3)!;
  assert.deepEqual(tx, { message: 0, recipients: [1] }, 'recipient 3 was decided meanwhile');
  b.add(2, 9);
  b.putBack(tx);
  assert.deepEqual(b.messages(), [0, 2], 'the transaction put back is in front');
  b.add(2, 10);
  b.drop((id) => id === 10);
  assert.equal(b.size, 2, 'a recipient decided elsewhere is dropped');
  assert.deepEqual(b.takeAll().sort(), [1, 9]);
  assert.equal(b.size, 0);
});

test('fail-over: placing again without a dead host moves its domains to the next MX, piggybacked onto that host', () => {
  const BACKUP = mx('mx.isp2.test', '192.0.2.2', 20);
  const a = targetsOf(ISP1, BACKUP); // a.test: isp1 primary, isp2 backup
  const c = targetsOf(ISP2); // c.test: isp2 primary
  const input = recipients([
    { targets: a, count: 3 },
    { targets: c, count: 2 },
  ]);
  assert.equal(place(input, never).hosts.length, 2);
  const dead = new Set([targetKey('192.0.2.1', 25)]);
  const again = place(input, (t) => dead.has(t.key));
  assert.equal(again.hosts.length, 1);
  assert.equal(again.hosts[0]!.target.ip, '192.0.2.2');
  assert.deepEqual(drain(again.hosts[0]!.backlog), [[0, [0, 1, 2, 3, 4]]]);
  // With every target gone the recipients are reported as exhausted.
  const none = place(input, always);
  assert.deepEqual(none.exhausted, [0, 1, 2, 3, 4]);
  assert.equal(none.hosts.length, 0);
  // Per-recipient availability (a host already tried for some recipients only).
  const perRecipient = place(input, (t, id) => id === 0 && t.ip === '192.0.2.1');
  assert.deepEqual(
    perRecipient.hosts.map((h) => [h.target.ip, drain(h.backlog)[0]![1]]),
    [
      ['192.0.2.2', [0, 3, 4]],
      ['192.0.2.1', [1, 2]],
    ],
  );
});

test('smart hosts and nomx targets place like any other target list', () => {
  // daemon relay1,relay2: every recipient has the same list; everything goes to relay1 until it fails.
  const smart: Target[] = [
    { key: '198.51.100.1:25', ip: '198.51.100.1', port: 25, host: 'relay1.test', preference: 0 },
    { key: '198.51.100.2:2525', ip: '198.51.100.2', port: 2525, host: 'relay2.test', preference: 1 },
  ];
  const rs = recipients([{ targets: smart, count: 150 }]);
  assert.deepEqual(place(rs, never).hosts.map((h) => [h.target.host, h.backlog.transactionsWaiting(100, always)]), [['relay1.test', 2]]);
  assert.deepEqual(place(rs, (t) => t.host === 'relay1.test').hosts.map((h) => [h.target.key, h.backlog.transactionsWaiting(100, always)]), [['198.51.100.2:2525', 2]]);
  // nomx: the domain's own address is the only target.
  const own = targetsOf({ name: 'plain.test', preference: 0, addresses: ['203.0.113.5', '2001:db8::5'] });
  assert.deepEqual(own.map((t) => t.key), ['203.0.113.5:25', '[2001:db8::5]:25']);
  const p = place(recipients([{ targets: own, count: 2 }]), (t) => t.ip === '203.0.113.5');
  assert.equal(p.hosts[0]!.target.ip, '2001:db8::5', 'the next address of the same host is tried');
});

test('connections per host: one at once while anything waits, another only when the transactions waiting outlast a new connection', () => {
  const base = { waitingRecipients: 10, waitingTransactions: 1, connections: 0, setupMs: null, transactionMs: null };
  assert.equal(wantsAnotherConnection(base), true, 'the first connection, before anything is known of the host');
  assert.equal(wantsAnotherConnection({ ...base, waitingRecipients: 0 }), false, 'nothing waits');
  // A host that greets 2 s late, 5 transactions of 20 ms waiting: the one connection drains them first.
  assert.equal(wantsAnotherConnection({ ...base, waitingTransactions: 5, connections: 1, setupMs: 2100, transactionMs: 20 }), false);
  // A host ready in 100 ms with 40 transactions of 20 ms waiting (800 ms): a second connection pays.
  assert.equal(wantsAnotherConnection({ ...base, waitingTransactions: 40, connections: 1, setupMs: 100, transactionMs: 20 }), true);
  assert.equal(wantsAnotherConnection({ ...base, waitingTransactions: 40, connections: 8, setupMs: 100, transactionMs: 20 }), false, 'eight share them');
  assert.equal(wantsAnotherConnection({ ...base, waitingTransactions: 40, connections: 1, setupMs: 100, transactionMs: 20, cpuBound: true }), false, 'not while the thread is busy on its CPU');
  assert.equal(wantsAnotherConnection({ ...base, cpuBound: true }), true, 'the first connection whatever the CPU');
  assert.equal(wantsAnotherConnection({ ...base, waitingTransactions: 40, connections: 1, setupMs: null, transactionMs: null }), false, 'not before the first connection says how fast the host is');
  assert.equal(wantsAnotherConnection({ ...base, waitingTransactions: 1, connections: 1, setupMs: 1, transactionMs: 100 }), false, 'no more connections than transactions');
});
