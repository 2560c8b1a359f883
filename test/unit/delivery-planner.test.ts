// The delivery planner: piggybacking by host address, 100 RCPT per transaction, parallel host
// limit, fail-over re-planning, smart hosts and nomx targets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planDeliveries, type PlanRecipient } from '../../src/delivery/planner.js';
import { orderTargets, targetKey, type ResolvedMx, type Target } from '../../src/delivery/mx.js';

const mx = (name: string, ip: string, preference = 10): ResolvedMx => ({ name, preference, addresses: [ip] });
const targetsOf = (...hosts: ResolvedMx[]): Target[] => orderTargets(hosts, { shuffle: false, rank: () => 0, port: 25 });

/** Recipients of one message: `count` users in each of the given domains' target lists. */
function recipients(domains: Array<{ targets: Target[]; count: number }>, message = 0, startId = 0): PlanRecipient[] {
  const list: PlanRecipient[] = [];
  let id = startId;
  for (const d of domains) for (let i = 0; i < d.count; i++) list.push({ id: id++, message, targets: d.targets });
  return list;
}

const ISP1 = mx('mx.isp1.test', '192.0.2.1');
const ISP2 = mx('mx.isp2.test', '192.0.2.2');
const never = () => false;

test('recipients of different domains with the same primary MX host go in one transaction', () => {
  const plan = planDeliveries({
    recipients: recipients([
      { targets: targetsOf(ISP1), count: 3 }, // a.test
      { targets: targetsOf(ISP1, { ...ISP2, preference: 20 }), count: 2 }, // b.test, same primary
      { targets: targetsOf(ISP2), count: 4 }, // c.test
    ]),
    unavailable: never,
    rcptPerTransaction: 100,
    maxConnections: 10,
  });
  assert.equal(plan.hosts.length, 2);
  assert.deepEqual(plan.hosts.map((h) => [h.target.ip, h.transactions.length, h.transactions[0]!.recipients.length]), [
    ['192.0.2.1', 1, 5],
    ['192.0.2.2', 1, 4],
  ]);
  assert.deepEqual(plan.exhausted, []);
});

test('piggybacking is by host address: two MX names for one address share transactions', () => {
  const alias = mx('mail.other-name.test', '192.0.2.1');
  const plan = planDeliveries({ recipients: recipients([{ targets: targetsOf(ISP1), count: 2 }, { targets: targetsOf(alias), count: 2 }]), unavailable: never, rcptPerTransaction: 100, maxConnections: 10 });
  assert.equal(plan.hosts.length, 1);
  assert.equal(plan.hosts[0]!.transactions[0]!.recipients.length, 4);
});

test('at most rcptPerTransaction recipients per transaction, messages never mixed, transactions in message order', () => {
  const plan = planDeliveries({
    recipients: [...recipients([{ targets: targetsOf(ISP1), count: 250 }], 1), ...recipients([{ targets: targetsOf(ISP1), count: 30 }], 0, 1000)],
    unavailable: never,
    rcptPerTransaction: 100,
    maxConnections: 10,
  });
  assert.equal(plan.hosts.length, 1);
  const txs = plan.hosts[0]!.transactions;
  assert.deepEqual(txs.map((t) => [t.message, t.recipients.length]), [
    [0, 30],
    [1, 100],
    [1, 100],
    [1, 50],
  ]);
  const single = planDeliveries({ recipients: recipients([{ targets: targetsOf(ISP1), count: 3 }]), unavailable: never, rcptPerTransaction: 1, maxConnections: 10 });
  assert.equal(single.hosts[0]!.transactions.length, 3, 'single: one copy per recipient');
});

test('hosts run in parallel up to the connection limit, the biggest first', () => {
  const hosts = Array.from({ length: 8 }, (_, i) => mx(`mx${i}.test`, `192.0.2.${10 + i}`));
  const plan = planDeliveries({ recipients: recipients(hosts.map((h, i) => ({ targets: targetsOf(h), count: i + 1 }))), unavailable: never, rcptPerTransaction: 100, maxConnections: 3 });
  assert.equal(plan.hosts.length, 8);
  assert.equal(plan.concurrency, 3);
  assert.deepEqual(plan.hosts.map((h) => h.transactions[0]!.recipients.length), [8, 7, 6, 5, 4, 3, 2, 1]);
  const few = planDeliveries({ recipients: recipients([{ targets: targetsOf(ISP1), count: 1 }]), unavailable: never, rcptPerTransaction: 100, maxConnections: 20 });
  assert.equal(few.concurrency, 1);
});

test('fail-over: re-planning without a dead host moves its domains to the next MX, piggybacked onto that host', () => {
  const BACKUP = mx('mx.isp2.test', '192.0.2.2', 20);
  const a = targetsOf(ISP1, BACKUP); // a.test: isp1 primary, isp2 backup
  const c = targetsOf(ISP2); // c.test: isp2 primary
  const input = recipients([
    { targets: a, count: 3 },
    { targets: c, count: 2 },
  ]);
  const first = planDeliveries({ recipients: input, unavailable: never, rcptPerTransaction: 100, maxConnections: 10 });
  assert.equal(first.hosts.length, 2);
  const dead = new Set([targetKey('192.0.2.1', 25)]);
  const again = planDeliveries({ recipients: input, unavailable: (t) => dead.has(t.key), rcptPerTransaction: 100, maxConnections: 10 });
  assert.equal(again.hosts.length, 1);
  assert.equal(again.hosts[0]!.target.ip, '192.0.2.2');
  assert.equal(again.hosts[0]!.transactions.length, 1);
  assert.deepEqual(again.hosts[0]!.transactions[0]!.recipients, [0, 1, 2, 3, 4]);
  // With every target gone the recipients are reported as exhausted.
  const none = planDeliveries({ recipients: input, unavailable: () => true, rcptPerTransaction: 100, maxConnections: 10 });
  assert.deepEqual(none.exhausted, [0, 1, 2, 3, 4]);
  assert.equal(none.hosts.length, 0);
  assert.equal(none.concurrency, 0);
  // Per-recipient availability (a host already tried for some recipients only).
  const perRecipient = planDeliveries({ recipients: input, unavailable: (t, id) => id === 0 && t.ip === '192.0.2.1', rcptPerTransaction: 100, maxConnections: 10 });
  assert.deepEqual(perRecipient.hosts.map((h) => [h.target.ip, h.transactions[0]!.recipients]), [
    ['192.0.2.2', [0, 3, 4]],
    ['192.0.2.1', [1, 2]],
  ]);
});

test('smart hosts and nomx targets plan like any other target list', () => {
  // daemon relay1,relay2: every recipient has the same list; everything goes to relay1 until it fails.
  const smart: Target[] = [
    { key: '198.51.100.1:25', ip: '198.51.100.1', port: 25, host: 'relay1.test', preference: 0 },
    { key: '198.51.100.2:2525', ip: '198.51.100.2', port: 2525, host: 'relay2.test', preference: 1 },
  ];
  const rs = recipients([{ targets: smart, count: 150 }]);
  const plan = planDeliveries({ recipients: rs, unavailable: never, rcptPerTransaction: 100, maxConnections: 10 });
  assert.deepEqual(plan.hosts.map((h) => [h.target.host, h.transactions.length]), [['relay1.test', 2]]);
  const failed = planDeliveries({ recipients: rs, unavailable: (t) => t.host === 'relay1.test', rcptPerTransaction: 100, maxConnections: 10 });
  assert.deepEqual(failed.hosts.map((h) => [h.target.key, h.transactions.length]), [['198.51.100.2:2525', 2]]);
  // nomx: the domain's own address is the only target.
  const own = targetsOf({ name: 'plain.test', preference: 0, addresses: ['203.0.113.5', '2001:db8::5'] });
  assert.deepEqual(own.map((t) => t.key), ['203.0.113.5:25', '[2001:db8::5]:25']);
  const p = planDeliveries({ recipients: recipients([{ targets: own, count: 2 }]), unavailable: (t) => t.ip === '203.0.113.5', rcptPerTransaction: 100, maxConnections: 10 });
  assert.equal(p.hosts[0]!.target.ip, '2001:db8::5', 'the next address of the same host is tried');
});
