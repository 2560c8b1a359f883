// The simulated internet of a mailing list's fan-out (bench/fanout-list.ts): recipients in list
// order (each domain's members spread through the list, not sorted by domain or MX host), domains
// whose two MX records point at far fewer hosts, some primaries dead (nothing listens) with a live
// backup, some hosts greeting late; dnsmasq answering the MX questions with the hosts' A records
// in the additional section; one counting SMTP peer per live host (test/helpers/sim-internet.ts).
import { startDnsmasq, type Dnsmasq } from '../../test/helpers/dnsmasq.js';
import { startSmtpPeer, type SmtpPeer } from '../../test/helpers/sim-internet.js';

export interface ListScenario {
  recipients: number;
  domains: number;
  hosts: number;
  /** Hosts that are some domains' primary MX and refuse connections (their domains fail over to a live backup). */
  dead: number;
  /** Hosts that greet `lateMs` late (after smtp-server's own 100 ms). */
  late: number;
  lateMs: number;
  /** Every live host greets `lateMs` late. */
  allLate: boolean;
  /** TTL of the DNS answers (dnsmasq's default for its own records is 0: not to be cached). */
  dnsTtl: number;
  /** Seed of the list order. */
  seed: number;
}

export const LIST_SCENARIO: ListScenario = { recipients: 10_000, domains: 1000, hosts: 100, dead: 5, late: 5, lateMs: 2000, allLate: false, dnsTtl: 0, seed: 1 };

export type HostKind = 'dead' | 'late' | 'ok';

export interface ListLayout {
  kinds: HostKind[];
  /** dnsmasq configuration lines: the MX and A records. */
  dnsLines: string[];
  /** The list, in list order. */
  recipients: string[];
  /** Per recipient (same order), the host its mail ends up on. */
  finalHost: number[];
}

/** The address of host h (127.8.0.1 …): 250 per /24. */
function hostIp(h: number): string {
  return `127.8.${Math.floor(h / 250)}.${(h % 250) + 1}`;
}

const hostName = (h: number): string => `mx${h}.isp.test`;

/** A small seeded PRNG (mulberry32): the same list for the same seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function listLayout(s: ListScenario): ListLayout {
  if (s.hosts > 250 * 250 || s.dead + 1 >= s.hosts || s.dead + s.late > s.hosts) throw new Error('bad scenario: hosts, dead and late do not fit');
  const kinds: HostKind[] = [];
  for (let h = 0; h < s.hosts; h++) kinds.push(h < s.dead ? 'dead' : s.allLate || h < s.dead + s.late ? 'late' : 'ok');
  const live = (h: number) => kinds[h] !== 'dead';
  const dnsLines = ['local=/test/'];
  for (let h = 0; h < s.hosts; h++) dnsLines.push(`host-record=${hostName(h)},${hostIp(h)}`);
  const finalOfDomain: number[] = [];
  for (let d = 0; d < s.domains; d++) {
    const primary = d % s.hosts;
    // The backup: another host, spread over the hosts, the next live one from there.
    let backup = (primary + 1 + ((d * 7919) % (s.hosts - 1))) % s.hosts;
    while (!live(backup) || backup === primary) backup = (backup + 1) % s.hosts;
    dnsLines.push(`mx-host=dom${d}.test,${hostName(primary)},10`, `mx-host=dom${d}.test,${hostName(backup)},20`);
    finalOfDomain[d] = live(primary) ? primary : backup;
  }
  // Each domain gets its share of members; the list order is a shuffle of them.
  const domainOf: number[] = [];
  for (let i = 0; i < s.recipients; i++) domainOf.push(i % s.domains);
  const random = prng(s.seed);
  for (let i = domainOf.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [domainOf[i], domainOf[j]] = [domainOf[j]!, domainOf[i]!];
  }
  const recipients = domainOf.map((d, i) => `member${i}@dom${d}.test`);
  return { kinds, dnsLines, recipients, finalHost: domainOf.map((d) => finalOfDomain[d]!) };
}

/**
 * The piggybacking minimum of transactions: per message and per host its recipients end up on,
 * ceil(recipients / rcptPerTransaction).
 */
export function minimumTransactions(l: ListLayout, perMessage: number, rcptPerTransaction = 100): number {
  let total = 0;
  for (let start = 0; start < l.recipients.length; start += perMessage) {
    const perHost = new Map<number, number>();
    for (let i = start; i < Math.min(l.recipients.length, start + perMessage); i++) perHost.set(l.finalHost[i]!, (perHost.get(l.finalHost[i]!) ?? 0) + 1);
    for (const n of perHost.values()) total += Math.ceil(n / rcptPerTransaction);
  }
  return total;
}

export interface ListWorld {
  dns: Dnsmasq;
  /** One per host, in host order (dead ones listen nowhere). */
  peers: SmtpPeer[];
  /** DNS queries so far, by type (from dnsmasq's query log). */
  dnsQueries(): Record<string, number>;
  close(): Promise<void>;
}

export async function startListWorld(s: ListScenario, l: ListLayout, dnsHost: string, mxPort: number): Promise<ListWorld> {
  const dns = await startDnsmasq({ host: dnsHost, port: 53, localTtl: s.dnsTtl, lines: l.dnsLines });
  const peers: SmtpPeer[] = [];
  try {
    for (let h = 0; h < s.hosts; h++) {
      const k = l.kinds[h]!;
      peers.push(await startSmtpPeer({ host: hostIp(h), port: mxPort, mode: k === 'dead' ? 'refuse' : 'normal', greetingDelayMs: k === 'late' ? s.lateMs : 0, keepData: false }));
    }
  } catch (err) {
    await Promise.all(peers.map((p) => p.close()));
    await dns.close();
    throw err;
  }
  return {
    dns,
    peers,
    dnsQueries() {
      const counts: Record<string, number> = {};
      for (const m of dns.log().matchAll(/ query\[(\w+)\] /g)) counts[m[1]!] = (counts[m[1]!] ?? 0) + 1;
      return counts;
    },
    async close() {
      await Promise.all(peers.map((p) => p.close()));
      await dns.close();
    },
  };
}
