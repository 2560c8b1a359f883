// The outbound TLS policy at the door of each transaction (tls/decision.ts applied): before MAIL,
// each recipient domain of the transaction is decided over this session, from the channel's
// keyword (musttls verifies the certificate), the domain's MTA-STS policy (found when its
// destination was looked up, destinations.ts) and the MX host's DANE TLSA records; recipients
// of a domain the policy refuses here are handed back to be tried at their next MX, like a host
// failure. The decision, and the `tls=` token of mail.log it gives, is made once per session,
// MX host name and domain (a session is shared by address, so by several MX names), which is
// also what TLS-RPT counts.
import net from 'node:net';
import { destinationOf } from './address.js';
import type { Target } from './mx.js';
import type { RunRecipient } from './recipients.js';
import type { SmtpSession } from './smtp-client.js';
import { describeHost } from './status.js';
import type { Channel } from '../config/types.js';
import type { RrsetSource } from '../dns/lookup.js';
import { decideTls, type TlsDecision, type TlsDecisionInput } from './tls/decision.js';
import type { TlsaLookup } from './tls/dane-lookup.js';
import type { StsPolicy } from './tls/mta-sts.js';
import type { OutboundTlsPolicy } from './tls/policy.js';
import type { TrustStore } from './tls/trust.js';

export interface GateVerdict {
  /** The recipients that may be sent over this session now. */
  allowed: RunRecipient[];
  /** Per refused domain: its recipients, the reason (`451 4.7.x …`), the session's `tls=` value, their MX (by this session's address). */
  refused: Array<{ ids: number[]; status: string; tls: string | null; target: Target }>;
  /** The `tls=` value for an allowed recipient's outcome (null in clear). */
  tlsOf(r: RunRecipient): string | null;
}

interface Memo {
  sts: StsPolicy | null;
  decision: TlsDecision;
}

export class TlsGate {
  /** Per session: decisions by MX host name and domain, TLSA lookups by MX host name. */
  private readonly sessions = new WeakMap<SmtpSession, { decisions: Map<string, Memo>; tlsa: Map<string, Promise<TlsaLookup | null>> }>();

  constructor(
    private readonly channel: Pick<Channel, 'tlsClient'>,
    /** MTA-STS, DANE, TLS-RPT and the trust store of the job; null: musttls verification only (Node's CAs). */
    private readonly policy: OutboundTlsPolicy | null,
    /** For whether a domain's MX RRset is DNSSEC-authenticated (a DANE match is then "Verified"). */
    private readonly lookup: RrsetSource | null,
  ) {}

  /** The CAs the SMTP client's handshakes check certificates against (Node's list plus TLS_CA_FILE). */
  get trust(): TrustStore | undefined {
    return this.policy?.trust;
  }

  /** The recipient domain's MTA-STS policy in force (null: none, MTA_STS=0, or a `notls` channel). At destination lookup. */
  async stsPolicy(domain: string): Promise<StsPolicy | null> {
    if (!this.policy || this.channel.tlsClient === 'notls') return null;
    // A policy that cannot be had is no policy (the resolver reports it for TLS-RPT).
    const { policy } = await this.policy.stsPolicy(domain).catch(() => ({ policy: null }));
    return policy && policy.policy.mode !== 'none' ? policy.policy : null;
  }

  /** RFC 8461 §5.1: under `enforce` only the MX hosts the policy names are tried (`refused`: none is left). */
  filterMx<T extends { name: string }>(domain: string, sts: StsPolicy | null, hosts: T[]): { hosts: T[]; refused: string | null } {
    return this.policy ? this.policy.filterMx(domain, sts, hosts) : { hosts, refused: null };
  }

  async check(session: SmtpSession, recipients: RunRecipient[]): Promise<GateVerdict> {
    const memo = this.memoOf(session);
    // Sessions are planned by address: each recipient is checked against its own MX name for it.
    const groups = new Map<string, { domain: string; target: Target; sts: StsPolicy | null; recipients: RunRecipient[] }>();
    for (const r of recipients) {
      const domain = domainOf(r.rcptTo);
      const target = r.targets.find((t) => t.key === session.target.key) ?? session.target;
      const key = `${target.host.toLowerCase()} ${domain}`;
      const g = groups.get(key);
      if (g) g.recipients.push(r);
      else groups.set(key, { domain, target, sts: r.sts, recipients: [r] });
    }
    const allowed: RunRecipient[] = [];
    const refused: GateVerdict['refused'] = [];
    const tlsById = new Map<number, string | null>();
    for (const [key, g] of groups) {
      let m = memo.decisions.get(key);
      if (m?.sts !== g.sts) {
        m = { sts: g.sts, decision: await this.decide(session, g.domain, g.target.host, g.sts, memo.tlsa) };
        memo.decisions.set(key, m);
      }
      const d = m.decision;
      if (d.action === 'deliver') {
        allowed.push(...g.recipients);
        for (const r of g.recipients) tlsById.set(r.id, d.tls);
      } else {
        refused.push({ ids: g.recipients.map((r) => r.id), status: d.status!, tls: d.tls, target: g.target });
      }
    }
    return { allowed, refused, tlsOf: (r) => tlsById.get(r.id) ?? null };
  }

  private async decide(session: SmtpSession, domain: string, mxHost: string, sts: StsPolicy | null, tlsaMemo: Map<string, Promise<TlsaLookup | null>>): Promise<TlsDecision> {
    const { target } = session;
    const notls = this.channel.tlsClient === 'notls';
    const named = !mxHost.startsWith('[') && net.isIP(mxHost) === 0;
    let tlsa: TlsaLookup | null = null;
    if (this.policy && !notls && named) {
      const host = mxHost.toLowerCase();
      let p = tlsaMemo.get(host);
      if (!p) tlsaMemo.set(host, (p = this.policy.tlsa(host, target.port)));
      tlsa = await p;
    }
    const input: TlsDecisionInput = {
      channelTls: this.channel.tlsClient,
      domain,
      mxHost,
      hostLabel: describeHost({ ...target, host: mxHost }),
      sts,
      tlsa,
      mxSecure: tlsa?.state === 'secure' ? await this.mxSecure(domain) : false,
      tls: session.tlsFacts,
    };
    return this.policy ? this.policy.decide(input, target.ip) : decideTls(input);
  }

  /** The domain's MX RRset came with the AD bit (the name the TLSA records vouch for is itself authenticated). */
  private async mxSecure(domain: string): Promise<boolean> {
    if (!this.lookup || domain.startsWith('[')) return false;
    const r = await this.lookup.rrset(domain, 'MX', { dnssec: true });
    return r.status === 'ok' && Boolean(r.authenticated);
  }

  private memoOf(session: SmtpSession) {
    let m = this.sessions.get(session);
    if (!m) this.sessions.set(session, (m = { decisions: new Map(), tlsa: new Map() }));
    return m;
  }
}

/** The recipient's next-hop domain (an address literal as itself), the decision's policy domain. */
function domainOf(rcptTo: string): string {
  const d = destinationOf(rcptTo);
  return d.kind === 'domain' ? d.domain : d.kind === 'literal' ? `[${d.ip}]` : '';
}
