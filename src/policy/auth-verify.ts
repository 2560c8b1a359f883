// SPF, DKIM, DMARC and ARC verification of an inbound message with mailauth, through tsubame's
// DNS client and cache (the cached lookup behind a node-style resolver), in bounded work: SPF
// within SPF_MAX_DNS_QUERIES lookups, SPF_MAX_VOID_QUERIES void ones and SPF_MAX_TIME; DKIM on at
// most DKIM_MAX_SIGNATURES signatures (the rest noted in the header); DKIM, ARC and DMARC lookups
// within AUTH_MAX_TIME and a query budget. Never throws: a failure inside a check becomes that
// check's temperror. The SMTP stages call checkSpf at MAIL (or HELO) and verifyMessage at the end
// of DATA; the decisions are the pure functions of auth-decision.ts.
import type { Readable } from 'node:stream';
import net from 'node:net';
import { nodeStyleResolver } from '../dns/node-resolver.js';
import type { RrsetSource } from '../dns/lookup.js';
import type { AuthSettings } from './auth-settings.js';
import { authResultsHeader } from './auth-results.js';
import { messageDecision, type ArcOutcome, type DkimOutcome, type DmarcOutcome, type SpfOutcome, type SpfResultCode } from './auth-decision.js';
import type { PolicyDecision } from './decision.js';
import { runArc, runDkim, runDmarc, runSpf, type DkimRun, type MailauthArc, type MailauthSpf } from './mailauth.js';

export interface SpfParams {
  /** The client's address. */
  ip: string;
  /** The HELO/EHLO argument, or null before one was given. */
  helo: string | null;
  /** The MAIL FROM address without brackets; '' for the null sender. */
  mailFrom: string;
}

const SPF_RESULTS = new Set<SpfResultCode>(['pass', 'fail', 'softfail', 'neutral', 'none', 'permerror', 'temperror']);

/**
 * SPF of the MAIL FROM identity (postmaster@HELO for the null sender), or of the HELO name with
 * `identity: 'helo'` (RFC 7208 §2.3).
 */
export async function checkSpf(lookup: RrsetSource, params: SpfParams, settings: AuthSettings, identity: 'mailfrom' | 'helo' = 'mailfrom'): Promise<SpfOutcome> {
  const ip = unmapIPv4(params.ip);
  const helo = params.helo ? heloForSpf(params.helo) : undefined;
  const sender = identity === 'helo' || !params.mailFrom ? (helo && !helo.startsWith('[') ? `postmaster@${helo}` : '') : params.mailFrom;
  const domain = (sender.split('@').pop() ?? '').toLowerCase();
  const spf = settings.spf;
  if (!sender) return spfOutcome(identity, ip, domain, null, 'none', 'no domain to check (null sender and no usable HELO name)');
  const resolver = nodeStyleResolver(lookup, {
    deadline: Date.now() + spf.maxTimeMs,
    // Each counted mechanism may ask a few questions (an MX mechanism one per exchanger, at most 10).
    maxQueries: spf.maxDnsQueries * 12 + 2,
  });
  try {
    const r = await runSpf({ resolver, ip, helo, sender, mta: settings.authservId, maxResolveCount: spf.maxDnsQueries, maxVoidCount: spf.maxVoidQueries });
    const outcome = fromMailauthSpf(identity, ip, r);
    if (resolver.exhausted && outcome.result === 'temperror') outcome.comment = `${outcome.comment ?? ''} (SPF_MAX_TIME reached)`.trim();
    return outcome;
  } catch (err) {
    return spfOutcome(identity, ip, domain, null, 'temperror', `SPF check failed: ${(err as Error).message}`);
  }
}

export interface VerifyParams extends SpfParams {
  /** The message as received (header and body), a buffer or a stream of it. */
  message: Buffer | Readable;
  /** SPF of MAIL FROM already checked at MAIL (checkSpf); checked here when absent and the channel checks SPF. */
  spf?: SpfOutcome | null;
  /** SPF of the HELO name checked at HELO (spfhelo). */
  heloSpf?: SpfOutcome | null;
}

export interface MessageVerification {
  /** The one Authentication-Results header field to prepend (folded, without the final CRLF). */
  authResultsHeader: string;
  spf: SpfOutcome | null;
  heloSpf: SpfOutcome | null;
  dkim: DkimOutcome[];
  /** DKIM-Signature fields beyond DKIM_MAX_SIGNATURES, not checked. */
  dkimIgnored: number;
  dmarc: DmarcOutcome | null;
  arc: ArcOutcome | null;
  /** What to do with the message (pure: auth-decision.ts messageDecision). */
  decision: PolicyDecision;
  /** DNS questions the DKIM, ARC and DMARC checks asked (cache hits included). */
  dnsQueries: number;
}

export async function verifyMessage(lookup: RrsetSource, params: VerifyParams, settings: AuthSettings): Promise<MessageVerification> {
  const spfWanted = settings.spf.stage !== 'none';
  const spfPromise: Promise<SpfOutcome | null> = params.spf !== undefined ? Promise.resolve(params.spf) : spfWanted ? checkSpf(lookup, params, settings) : Promise.resolve(null);
  const heloSpf = params.heloSpf ?? null;
  let dkim: DkimOutcome[] = [];
  let dkimIgnored = 0;
  let dmarc: DmarcOutcome | null = null;
  let arc: ArcOutcome | null = null;
  let dnsQueries = 0;
  const rows: string[] = [];
  if (settings.verify) {
    const resolver = nodeStyleResolver(lookup, { deadline: Date.now() + settings.maxTimeMs, maxQueries: settings.maxDnsQueries });
    let run: DkimRun | null = null;
    try {
      run = await runDkim(params.message, { resolver, minBitLength: settings.dkimMinKeyBits, sender: params.mailFrom, maxSignatures: settings.dkimMaxSignatures });
    } catch (err) {
      dkim = [{ result: 'temperror', domain: null, selector: null, algorithm: null, aligned: null, comment: (err as Error).message, info: 'dkim=temperror (verification failed)' }];
    }
    const spf = await spfPromise;
    if (run) {
      dkim = run.results.map(fromMailauthDkim);
      dkimIgnored = run.ignoredSignatures;
      arc = await runArc(run.arcData, { resolver, minBitLength: settings.dkimMinKeyBits }).then(fromMailauthArc, (err: Error) => arcError(err));
      if (run.headerFrom.length === 1) {
        const spfDomains = spf?.result === 'pass' && spf.identity === 'mailfrom' ? [spf.domain] : [];
        const dkimDomains = run.results
          .filter((d) => d.status.result === 'pass' && d.signingDomain)
          .map((d) => ({ domain: d.signingDomain!, aligned: d.status.aligned, underSized: d.status.underSized }));
        const raw = await runDmarc({ resolver, headerFrom: run.headerFrom, spfDomains, dkimDomains, arcResult: arc ? ({ status: { result: arc.result } }) : ({ status: { result: 'none' } }) }).catch(
          (err: Error) => ({ status: { result: 'temperror' }, domain: domainOf(run.headerFrom[0]!), info: 'dmarc=temperror', error: err.message }) as const,
        );
        if (raw) dmarc = fromMailauthDmarc(raw, arc);
      } else {
        // No single From address: DMARC cannot be applied (RFC 7489 §6.6.1 leaves it to local policy); recorded, not enforced.
        dmarc = { result: 'permerror', domain: '', policy: null, pct: 100, info: `dmarc=permerror (${run.headerFrom.length ? 'several' : 'no'} From addresses)` };
      }
    }
    dnsQueries = resolver.queries;
    rows.push(...dkim.map((d) => d.info));
    if (dkimIgnored) rows[rows.length - 1] += ` (${dkimIgnored} more DKIM signatures not checked: DKIM_MAX_SIGNATURES=${settings.dkimMaxSignatures})`;
    if (heloSpf) rows.push(heloSpf.info);
    if (spf) rows.push(spf.info);
    if (dmarc) rows.push(dmarc.info);
    if (arc) rows.push(arc.info);
    const header = authResultsHeader(settings.authservId, rows);
    const decision = messageDecision({ spf, heloSpf, dkim, dmarc, arc }, settings);
    return { authResultsHeader: header, spf, heloSpf, dkim, dkimIgnored, dmarc, arc, decision, dnsQueries };
  }
  const spf = await spfPromise;
  if (heloSpf) rows.push(heloSpf.info);
  if (spf) rows.push(spf.info);
  return {
    authResultsHeader: authResultsHeader(settings.authservId, rows),
    spf,
    heloSpf,
    dkim,
    dkimIgnored,
    dmarc,
    arc,
    decision: messageDecision({ spf, heloSpf, dkim: [], dmarc: null, arc: null }, settings),
    dnsQueries,
  };
}

function fromMailauthSpf(identity: 'mailfrom' | 'helo', ip: string, r: MailauthSpf): SpfOutcome {
  const result = (SPF_RESULTS.has(r.status.result as SpfResultCode) ? r.status.result : 'temperror') as SpfResultCode;
  let info = r.info;
  // mailauth names the MAIL FROM identity even for a HELO check: say which one it was.
  if (identity === 'helo') info = info.replace(/ smtp\.mailfrom=\S+/, '');
  return {
    identity,
    result,
    domain: r.domain,
    ip,
    comment: r.status.comment ?? null,
    record: r.rr ?? null,
    lookups: r.lookups?.count ?? 0,
    voidLookups: r.lookups?.void ?? 0,
    info,
  };
}

function spfOutcome(identity: 'mailfrom' | 'helo', ip: string, domain: string, record: string | null, result: SpfResultCode, comment: string): SpfOutcome {
  return { identity, result, domain, ip, comment, record, lookups: 0, voidLookups: 0, info: `spf=${result} (${comment.replace(/[()\\]/g, ' ')})` };
}

function fromMailauthDkim(d: { signingDomain?: string; selector?: string; algo?: string; status: { result: string; comment?: string; aligned?: string | false }; info: string }): DkimOutcome {
  return {
    result: d.status.result,
    domain: d.signingDomain || null,
    selector: d.selector || null,
    algorithm: d.algo || null,
    aligned: d.status.aligned || null,
    comment: d.status.comment ?? null,
    info: d.info,
  };
}

function fromMailauthArc(a: MailauthArc): ArcOutcome {
  const chain = Array.isArray(a.chain) ? a.chain : [];
  const newest = chain[chain.length - 1];
  const sealer = newest?.['arc-seal']?.parsed?.d?.value?.toLowerCase().replace(/\.$/, '') ?? null;
  return { result: a.status.result, instance: typeof a.i === 'number' ? a.i : 0, sealer, comment: a.status.comment ?? null, info: a.info ?? `arc=${a.status.result}` };
}

function arcError(err: Error): ArcOutcome {
  return { result: 'temperror', instance: 0, sealer: null, comment: err.message, info: 'arc=temperror' };
}

const POLICIES = new Set(['none', 'quarantine', 'reject']);

function fromMailauthDmarc(d: { status: { result: string }; domain: string; policy?: string; pct?: number; info: string }, arc: ArcOutcome | null): DmarcOutcome {
  const policy = (d.policy ?? '').trim().toLowerCase();
  const pct = typeof d.pct === 'number' && d.pct >= 0 && d.pct <= 100 ? d.pct : 100;
  const known = POLICIES.has(policy) ? (policy as DmarcOutcome['policy']) : null;
  // The row is made here: mailauth's comment repeats p= and sp= as published, which a hostile record can make huge.
  const comment = [known ? `p=${known.toUpperCase()}` : policy ? 'p=invalid' : '', pct < 100 ? `pct=${pct}` : '', arc && arc.result !== 'none' ? `arc=${arc.result}` : ''].filter(Boolean).join(' ');
  const info = `dmarc=${d.status.result}${comment ? ` (${comment})` : ''}${d.domain ? ` header.from=${d.domain}` : ''}`;
  return { result: d.status.result, domain: d.domain, policy: known, pct, info };
}

function domainOf(address: string): string {
  return (address.split('@').pop() ?? '').toLowerCase();
}

/** An IP literal HELO ([192.0.2.1]) as SPF macros want it; a name as it is. */
function heloForSpf(helo: string): string {
  const bare = helo.replace(/^\[(?:IPv6:)?|\]$/gi, '');
  return net.isIP(bare) ? `[${bare}]` : helo;
}

function unmapIPv4(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}
