// MX selection rules of RFC 5321 §5.1 and RFC 7505, as pure functions over plain records.
import type { MxMode } from '../config/types.js';
import { normalizeDomain } from '../common/domain-name.js';

export interface MxRecord {
  exchange: string; // host name, lower-case, no trailing dot; '' for the null MX
  preference: number;
}

/** An MX host with its addresses (from the additional section or an A/AAAA lookup). */
export interface ResolvedMx {
  name: string;
  preference: number;
  addresses: string[];
}

/** One place to connect to: an address of an MX host (or smart host), with the port. */
export interface Target {
  /** `ip:port`, the piggybacking key (SMTPfeed §3.2: by host address, not by domain). */
  key: string;
  ip: string;
  port: number;
  /** The MX (or smart host) name: TLS server name and what logs and statuses show. */
  host: string;
  preference: number;
}

export type MxAnswer =
  | { kind: 'null' } // RFC 7505: the domain accepts no mail
  | { kind: 'none' } // no MX records: the domain's own address is the implicit MX
  | { kind: 'list'; records: MxRecord[] }; // sorted by preference, equal ones in answer order

/** Classifies the MX records of an answer. A null MX next to real MX records is ignored (misconfiguration). */
export function interpretMxRecords(records: MxRecord[]): MxAnswer {
  if (records.length === 0) return { kind: 'none' };
  const real = records.filter((r) => normalizeDomain(r.exchange) !== '');
  if (real.length === 0) return { kind: 'null' };
  return { kind: 'list', records: sortMxRecords(real) };
}

/** Sorted by preference; a stable sort, so equal preferences stay in answer order. */
export function sortMxRecords(records: MxRecord[]): MxRecord[] {
  return records
    .map((r, i) => ({ r: { exchange: normalizeDomain(r.exchange), preference: r.preference }, i }))
    .sort((a, b) => a.r.preference - b.r.preference || a.i - b.i)
    .map((x) => x.r);
}

/**
 * RFC 5321 §5.1: when this host is in the list, it and every MX of equal or worse preference are
 * dropped (we are a backup MX relaying to the better ones). `loop` when nothing is left.
 */
export function dropSelfAndWorse(records: MxRecord[], localNames: string[]): { records: MxRecord[]; loop: boolean } {
  const names = new Set(localNames.map(normalizeDomain));
  const self = records.find((r) => names.has(r.exchange));
  if (!self) return { records, loop: false };
  const kept = records.filter((r) => r.preference < self.preference);
  return { records: kept, loop: kept.length === 0 };
}

/** Whether equal-preference MX hosts are shuffled: Messaging Server's `mx` means nonrandommx. */
export function shufflesEqualPreferences(mode: MxMode): boolean {
  return mode === 'randommx' || mode === 'defaultmx';
}

/**
 * The connect order for one domain: by preference; within a preference, hosts ranked by `rank`
 * when shuffling (one random number per host address for the whole delivery run, so that domains
 * sharing MX hosts pick the same one and piggyback), else in answer order. Each host contributes
 * its addresses in order.
 */
export function orderTargets(hosts: ResolvedMx[], opts: { shuffle: boolean; rank: (hostKey: string) => number; port: number }): Target[] {
  const indexed = hosts.map((h, i) => ({ h, i, r: opts.shuffle ? opts.rank(h.addresses[0] ?? h.name) : 0 }));
  indexed.sort((a, b) => a.h.preference - b.h.preference || a.r - b.r || a.i - b.i);
  const targets: Target[] = [];
  const seen = new Set<string>();
  for (const { h } of indexed) {
    for (const ip of h.addresses) {
      const key = targetKey(ip, opts.port);
      if (seen.has(key)) continue; // two MX names for one address: one target
      seen.add(key);
      targets.push({ key, ip, port: opts.port, host: h.name, preference: h.preference });
    }
  }
  return targets;
}

export function targetKey(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** A rank function that gives every key one random number, fixed for the rank's life. */
export function randomRank(random: () => number = Math.random): (key: string) => number {
  const ranks = new Map<string, number>();
  return (key) => {
    let r = ranks.get(key);
    if (r === undefined) {
      r = random();
      ranks.set(key, r);
    }
    return r;
  };
}
