// MAX_CONNS_PER_IP across processes: the dispatcher's ledger (per-ip-ledger.ts) and the processes'
// gates (client-limits.ts) wired together through FIFO channels, as the IPC channels are, with the
// messages delivered in every kind of interleaving. The limit is never exceeded, every ask is
// answered, and at rest the ledger's count is the processes' own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerIpLedger, CENSUS_TIMEOUT_MS, type LedgerMessage } from '../../src/dispatcher/per-ip-ledger.js';
import { PerIpGate, type PerIpArbiter } from '../../src/smtp-server/client-limits.js';

type Up =
  | { type: 'ip-acquire'; ip: string; id: number; have?: number }
  | { type: 'ip-count'; ip: string; epoch: number; count: number }
  | { type: 'ip-release'; ip: string };

/** N processes and a dispatcher, with a queue each way per process. */
class Farm {
  readonly gates: PerIpGate[] = [];
  readonly up: Up[][] = [];
  readonly down: LedgerMessage[][] = [];
  /** Sessions each process holds per address (granted and not ended). */
  readonly held: Array<Map<string, number>> = [];
  readonly ledger: PerIpLedger;
  private readonly waiting: Array<Map<number, (ok: boolean) => void>> = [];
  private nextId = 1;
  refusals = 0;
  asked = 0;
  answered = 0;
  now = 0;

  constructor(
    readonly procs: number,
    readonly limit: number,
  ) {
    this.ledger = new PerIpLedger(limit, procs, () => [...Array(procs).keys()]);
    for (let p = 0; p < procs; p++) {
      this.up.push([]);
      this.down.push([]);
      this.held.push(new Map());
      this.waiting.push(new Map());
      const arbiter: PerIpArbiter = {
        ask: (ip, have) =>
          new Promise((resolve) => {
            const id = this.nextId++;
            this.waiting[p]!.set(id, resolve);
            this.up[p]!.push({ type: 'ip-acquire', ip, id, ...(have !== undefined ? { have } : {}) });
          }),
        released: (ip) => this.up[p]!.push({ type: 'ip-release', ip }),
        counted: (ip, epoch, count) => this.up[p]!.push({ type: 'ip-count', ip, epoch, count }),
      };
      const gate = new PerIpGate(limit, arbiter);
      gate.setAllowance(this.ledger.allowance);
      this.gates.push(gate);
    }
  }

  total(ip: string): number {
    return this.held.reduce((n, m) => n + (m.get(ip) ?? 0), 0);
  }

  private hold(p: number, ip: string, delta: number): void {
    this.held[p]!.set(ip, (this.held[p]!.get(ip) ?? 0) + delta);
  }

  async connect(p: number, ip: string): Promise<void> {
    const decided = this.gates[p]!.acquire(ip);
    if (decided === true) this.hold(p, ip, 1);
    else if (decided === false) this.refusals++;
    else {
      this.asked++;
      void decided.then((ok) => {
        this.answered++;
        if (ok) this.hold(p, ip, 1);
        else this.refusals++;
      });
    }
    await flush();
  }

  async end(p: number, ip: string): Promise<void> {
    if ((this.held[p]!.get(ip) ?? 0) === 0) return;
    this.hold(p, ip, -1);
    this.gates[p]!.release(ip);
    await flush();
  }

  /** Delivers the next message of one process's up queue to the ledger. */
  async deliverUp(p: number): Promise<void> {
    const m = this.up[p]!.shift();
    if (!m) return;
    const sends =
      m.type === 'ip-acquire'
        ? this.ledger.acquire(p, m.ip, m.id, m.have, this.now)
        : m.type === 'ip-count'
          ? this.ledger.census(p, m.ip, m.epoch, m.count)
          : this.ledger.release(p, m.ip);
    for (const s of sends) this.down[s.to]!.push(s.msg);
    await flush();
  }

  /** Delivers the next message of one process's down queue to its gate. */
  async deliverDown(p: number): Promise<void> {
    const m = this.down[p]!.shift();
    if (!m) return;
    if (m.type === 'ip-track') this.gates[p]!.track(m.ip, m.epoch);
    else if (m.type === 'ip-untrack') this.gates[p]!.untrack(m.ip);
    else {
      const resolve = this.waiting[p]!.get(m.id);
      this.waiting[p]!.delete(m.id);
      resolve?.(m.ok);
    }
    await flush();
  }

  async settle(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      let moved = false;
      for (let p = 0; p < this.procs; p++) {
        if (this.up[p]!.length || this.down[p]!.length) moved = true;
        await this.deliverUp(p);
        await this.deliverDown(p);
      }
      if (!moved) return;
    }
    throw new Error('the messages never settle');
  }
}

function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A small deterministic random source. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

test('each process takes its allowance of an address without asking; beyond it the dispatcher decides', async () => {
  const f = new Farm(2, 6);
  assert.equal(f.ledger.allowance, 3);
  for (let i = 0; i < 3; i++) await f.connect(0, '192.0.2.1');
  assert.equal(f.asked, 0);
  assert.equal(f.up[0]!.length, 0, 'no message for the first three');
  await f.connect(0, '192.0.2.1'); // the fourth asks; process 1 is asked how many it holds
  assert.equal(f.asked, 1);
  await f.settle();
  assert.equal(f.total('192.0.2.1'), 4);
  assert.equal(f.ledger.total('192.0.2.1'), 4);
  for (let i = 0; i < 2; i++) await f.connect(1, '192.0.2.1');
  await f.settle();
  assert.equal(f.total('192.0.2.1'), 6);
  await f.connect(1, '192.0.2.1');
  await f.connect(0, '192.0.2.1');
  await f.settle();
  assert.equal(f.total('192.0.2.1'), 6, 'the limit holds across the processes');
  assert.equal(f.refusals, 2);
  // Another address is not affected.
  await f.connect(1, '198.51.100.7');
  assert.equal(f.total('198.51.100.7'), 1);
});

test('a session that ends makes room at once; a quiet address is counted by the processes alone again', async () => {
  const f = new Farm(2, 4);
  for (let i = 0; i < 4; i++) await f.connect(0, '192.0.2.9');
  await f.settle();
  await f.connect(1, '192.0.2.9');
  await f.settle();
  assert.equal(f.total('192.0.2.9'), 4);
  assert.equal(f.refusals, 1);
  await f.end(0, '192.0.2.9');
  await f.settle();
  await f.connect(1, '192.0.2.9');
  await f.settle();
  assert.equal(f.total('192.0.2.9'), 4);
  assert.equal(f.held[1]!.get('192.0.2.9'), 1);
  for (let i = 0; i < 4; i++) {
    await f.end(0, '192.0.2.9');
    await f.end(1, '192.0.2.9');
  }
  await f.settle();
  assert.deepEqual(f.ledger.trackedAddresses(), [], 'untracked once quiet');
  const before = f.up[0]!.length;
  await f.connect(0, '192.0.2.9');
  assert.equal(f.up[0]!.length, before, 'taken without a message again');
});

test('every interleaving of asks, ends, censuses and answers keeps the limit and answers every ask', async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = random(seed);
    const procs = 2 + (seed % 3);
    const limit = [1, 2, 3, 5, 8][seed % 5]!;
    const f = new Farm(procs, limit);
    const ips = ['192.0.2.1', '192.0.2.2'];
    for (let step = 0; step < 400; step++) {
      const p = Math.floor(rnd() * procs);
      const ip = ips[Math.floor(rnd() * ips.length)]!;
      const r = rnd();
      if (r < 0.3) await f.connect(p, ip);
      else if (r < 0.5) await f.end(p, ip);
      else if (r < 0.75) await f.deliverUp(p);
      else await f.deliverDown(p);
      for (const x of ips) assert.ok(f.total(x) <= limit, `seed ${seed} step ${step}: ${f.total(x)} sessions of ${x} over ${limit}`);
    }
    await f.settle();
    assert.equal(f.answered, f.asked, `seed ${seed}: every ask answered`);
    for (const x of ips) {
      assert.ok(f.total(x) <= limit);
      const counted = f.ledger.total(x);
      if (counted !== null) assert.equal(counted, f.total(x), `seed ${seed}: the ledger counts what the processes hold`);
      else for (const m of f.held) assert.ok((m.get(x) ?? 0) <= f.ledger.allowance, `seed ${seed}: untracked, each within its allowance`);
    }
    // At rest the limit is reachable again: end everything, then take the limit from one process.
    for (let p = 0; p < procs; p++) for (const x of ips) while ((f.held[p]!.get(x) ?? 0) > 0) await f.end(p, x);
    await f.settle();
    f.refusals = 0;
    for (let i = 0; i < limit; i++) await f.connect(seed % procs, ips[0]!);
    await f.settle();
    assert.equal(f.total(ips[0]!), limit, `seed ${seed}: the whole limit is usable`);
    assert.equal(f.refusals, 0);
  }
});

test('a process that does not answer the census is counted at its allowance after CENSUS_TIMEOUT_MS', async () => {
  const f = new Farm(3, 6); // allowance 2
  await f.connect(0, '192.0.2.5');
  await f.connect(0, '192.0.2.5');
  await f.connect(0, '192.0.2.5'); // asks
  await f.deliverUp(0); // census: 1 and 2 are asked
  await f.deliverDown(1);
  await f.deliverUp(1); // 1 answers; 2 stays silent
  assert.equal(f.answered, 0);
  for (const s of f.ledger.expire(CENSUS_TIMEOUT_MS - 1)) f.down[s.to]!.push(s.msg);
  assert.equal(f.down[0]!.length, 0, 'not yet');
  for (const s of f.ledger.expire(CENSUS_TIMEOUT_MS)) f.down[s.to]!.push(s.msg);
  while (f.down[0]!.length > 0) await f.deliverDown(0);
  assert.equal(f.answered, 1);
  assert.equal(f.ledger.total('192.0.2.5'), 2 + 0 + 2 + 1, 'the silent one counted at its allowance');
});

test('a process that exits takes its sessions and its asks with it; a new one is told the tracked addresses', async () => {
  let live = [0, 1];
  const ledger = new PerIpLedger(3, 2, () => live);
  ledger.acquire(0, '192.0.2.3', 1, 1, 0); // process 0 holds 1 (its allowance), asks for a second
  ledger.census(1, '192.0.2.3', 1, 1);
  assert.equal(ledger.total('192.0.2.3'), 3);
  const refused = ledger.acquire(1, '192.0.2.3', 2, undefined, 0);
  assert.deepEqual(refused.filter((s) => s.msg.type === 'ip-answer'), [{ to: 1, msg: { type: 'ip-answer', id: 2, ok: false } }]);
  live = [1];
  ledger.processGone(0);
  assert.equal(ledger.total('192.0.2.3'), 1);
  live = [1, 2];
  assert.deepEqual(ledger.processReady(2), [{ to: 2, msg: { type: 'ip-track', ip: '192.0.2.3', epoch: 1 } }]);
  const granted = ledger.acquire(2, '192.0.2.3', 3, undefined, 0);
  assert.ok(granted.some((s) => s.msg.type === 'ip-answer' && s.msg.ok));
  assert.equal(ledger.total('192.0.2.3'), 2);
});

test('MAX_CONNS_PER_IP 0 is no limit; the gate alone counts up to its limit', async () => {
  const ledger = new PerIpLedger(0, 4, () => [0]);
  assert.ok(ledger.allowance > 1_000_000);
  const alone = new PerIpGate(2);
  assert.equal(alone.acquire('192.0.2.1'), true);
  assert.equal(alone.acquire('192.0.2.1'), true);
  assert.equal(alone.acquire('192.0.2.1'), false);
  alone.setLimit(3);
  assert.equal(alone.acquire('192.0.2.1'), true);
  assert.equal(alone.count('192.0.2.1'), 3);
});
