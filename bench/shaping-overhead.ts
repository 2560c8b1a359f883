// Traffic shaping's cost per decision with many destinations (issue 17: "shaping's overhead at
// 10,000 destinations"). A Shaper with a few provider groups (MX_SUFFIX) and rate-limited
// sections; N recipient domains on MX hosts of their own and N/10 more at the providers. Measured, after a warm-up round that makes every state:
//   classify   the destination of a (domain, MX host): policy lookup only
//   lookup     stateFor(): classify and find the state
//   cycle      what delivering one message costs in shaping calls: stateFor, connectionOpened,
//              messageStarted, replyReceived (250), messageSent, connectionClosed
//   reuse      one more message on an open connection: mayStartMessage, messageStarted, messageSent
// and the heap per destination. Prints one line per measure (or JSON).
//   node dist/bench/shaping-overhead.js [--destinations 10000] [--rounds 20] [--json]
import { parseArgs } from 'node:util';
import { Shaper } from '../src/shaping/index.js';
import { SHAPING_DEFAULTS, parseRate } from '../src/config/shaping-cnf.js';
import type { RateLimit, ShapingConfig, ShapingSection } from '../src/config/types.js';

const { values } = parseArgs({ options: { destinations: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '20' }, json: { type: 'boolean', default: false } } });
const n = Number(values.destinations);
const rounds = Number(values.rounds);

const rate = (t: string) => parseRate(t) as RateLimit;
const section = (name: string, mxSuffixes: string[], over: Partial<ShapingSection['limits']> = {}): ShapingSection => ({
  name,
  domains: [],
  domainSuffixes: [],
  mxHosts: [],
  mxSuffixes,
  scope: 'group',
  limits: { ...SHAPING_DEFAULTS, maxConnections: 10_000, initialConnections: 10_000, ...over },
  file: 'bench',
  line: 1,
});
const config: ShapingConfig = {
  file: 'bench',
  defaults: { ...SHAPING_DEFAULTS, maxConnections: 100, initialConnections: 100 },
  sections: [
    section('gmail', ['google.com', 'googlemail.com'], { maxMessageRate: rate('1000000/s') }),
    section('outlook', ['mail.protection.outlook.com', 'olc.protection.outlook.com']),
    section('yahoo', ['yahoodns.net'], { maxMessageRate: rate('1000000/s') }),
  ],
};
const providers = ['aspmx.l.google.com', 'x.mail.protection.outlook.com', 'mta5.am0.yahoodns.net'];
// N domains on MX hosts of their own (N destinations), and N/10 more at the providers (3 more).
const work = [
  ...Array.from({ length: n }, (_, i) => ({ domain: `d${i}.example`, host: `mx${i}.hosting${i % 97}.example` })),
  ...Array.from({ length: Math.floor(n / 10) }, (_, i) => ({ domain: `p${i}.example`, host: providers[i % 3]! })),
];

const heapBefore = heapUsed();
const shaper = new Shaper(config);
let now = Date.now();
for (const w of work) cycle(w.domain, w.host);
const heapAfter = heapUsed();

const perOp = (label: string, ops: number, fn: () => void) => {
  const t0 = process.hrtime.bigint();
  fn();
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  return { label, ns: Math.round(ns), ops };
};

const results = [
  perOp('classify', work.length * rounds, () => {
    for (let r = 0; r < rounds; r++) for (const w of work) shaper.destination(w.domain, w.host);
  }),
  perOp('lookup', work.length * rounds, () => {
    for (let r = 0; r < rounds; r++) for (const w of work) shaper.stateFor(w.domain, w.host, now);
  }),
  perOp('cycle', work.length * rounds, () => {
    for (let r = 0; r < rounds; r++) {
      now += 1000;
      for (const w of work) cycle(w.domain, w.host);
    }
  }),
  perOp('reuse', work.length * rounds, () => {
    const states = work.map((w) => shaper.stateFor(w.domain, w.host, now));
    const leases = states.map((s) => s.connectionOpened(now)!);
    for (let r = 0; r < rounds; r++) {
      now += 1000;
      for (let i = 0; i < states.length; i++) {
        const s = states[i]!;
        const l = leases[i]!;
        if (s.mayStartMessage(l, now) && s.messageStarted(l, now)) s.messageSent(l, now);
      }
    }
    for (let i = 0; i < states.length; i++) states[i]!.connectionClosed(leases[i]!, now);
  }),
];
const statesMade = shaper.size;
const bytesPerDestination = Math.round((heapAfter - heapBefore) / statesMade);
if (values.json) {
  process.stdout.write(`${JSON.stringify({ destinations: n, states: statesMade, rounds, bytesPerDestination, results })}\n`);
} else {
  process.stdout.write(`${work.length} recipient domains → ${statesMade} shaping destinations (3 of them provider groups), ${rounds} rounds; heap about ${bytesPerDestination} bytes per destination\n`);
  for (const r of results) process.stdout.write(`${r.label.padEnd(9)} ${String(r.ns).padStart(6)} ns per call group (${r.ops} groups)\n`);
}

function cycle(domain: string, host: string): void {
  const s = shaper.stateFor(domain, host, now);
  const lease = s.connectionOpened(now);
  if (!lease) throw new Error(`no connection for ${domain} via ${host}`);
  if (s.messageStarted(lease, now)) {
    s.replyReceived(250, '250 2.0.0 OK', now, lease);
    s.messageSent(lease, now);
  }
  s.connectionClosed(lease, now);
}

function heapUsed(): number {
  globalThis.gc?.();
  return process.memoryUsage().heapUsed;
}
