// Verified outbound TLS for a delivery job, in one object the engine holds: the trust store for
// the SMTP client's handshakes, recipient domains' MTA-STS policies (at destination resolution),
// MX hosts' DANE TLSA records, the decision per session and domain, and TLS-RPT counting. Each
// part is off when its option.dat switch is (MTA_STS, DANE, TLSRPT); with all off only musttls
// verification remains.
import { join } from 'node:path';
import type { RrsetSource } from '../../dns/lookup.js';
import { decideTls, type TlsDecision, type TlsDecisionInput } from './decision.js';
import { lookupTlsa, type TlsaLookup } from './dane-lookup.js';
import { mxAllowed, type StsPolicy } from './mta-sts.js';
import { MtaStsResolver, type StsResolution } from './mta-sts-resolver.js';
import { StsPolicyStore } from './mta-sts-store.js';
import type { TlsPolicySettings } from './settings.js';
import { TlsRptRecorder } from './tlsrpt.js';
import { loadTrustStore, type TrustStore } from './trust.js';

export interface OutboundTlsPolicyOptions {
  settings: TlsPolicySettings;
  /** The delivery's cached DNS lookup (DNS_SERVERS): TXT, A/AAAA of policy hosts, TLSA with DNSSEC. */
  lookup: RrsetSource;
  /** The instance's tls/ directory (InstancePaths.tls). */
  stateDir: string;
  /** LOCAL_HOST: TLS-RPT's organization-name and postmaster@ contact. */
  localHost: string;
  /** The policy host's HTTPS port: 443 but in tests. */
  stsPort?: number;
  now?: () => number;
}

export class OutboundTlsPolicy {
  /** For openSession's `trust`. */
  readonly trust: TrustStore;
  private readonly sts: MtaStsResolver | null;
  private readonly rpt: TlsRptRecorder | null;

  /** Throws `TLS_CA_FILE …` when the CA file cannot be used (cnbuild reports it first). */
  constructor(private readonly options: OutboundTlsPolicyOptions) {
    const { settings } = options;
    this.trust = loadTrustStore(settings.caFile);
    this.sts = settings.mtaSts
      ? new MtaStsResolver({ lookup: options.lookup, store: new StsPolicyStore(join(options.stateDir, 'mta-sts')), trust: this.trust, timeoutMs: settings.mtaStsTimeoutMs, port: options.stsPort, now: options.now })
      : null;
    const now = options.now ?? Date.now;
    this.rpt = settings.tlsRpt ? new TlsRptRecorder(join(options.stateDir, 'tlsrpt'), { name: options.localHost, contact: `postmaster@${options.localHost}` }, () => new Date(now())) : null;
  }

  /** The recipient domain's MTA-STS policy (no policy when MTA_STS=0). Call once per domain when resolving it. */
  async stsPolicy(domain: string): Promise<StsResolution> {
    if (!this.sts) return { policy: null, problem: null };
    const r = await this.sts.policyFor(domain);
    // A policy that could not be had is a TLS-RPT failure of the domain (RFC 8460 §4.3.2.2).
    if (r.problem && this.rpt) {
      this.rpt.record({ policyType: 'sts', policyDomain: domain.toLowerCase(), policyString: [], mxPatterns: [], mxHost: '', result: r.problem.kind, detail: r.problem.reason });
    }
    return r;
  }

  /**
   * RFC 8461 §5.1 under `enforce`: only the MX hosts the policy lists may be tried. `refused`: the
   * status for the domain's recipients when none is left. Other modes keep every host.
   */
  filterMx<T extends { name: string }>(domain: string, sts: StsPolicy | null, hosts: T[]): { hosts: T[]; refused: string | null } {
    if (sts?.mode !== 'enforce') return { hosts, refused: null };
    const kept = hosts.filter((h) => mxAllowed(sts, h.name));
    if (kept.length) return { hosts: kept, refused: null };
    const names = hosts.map((h) => h.name).join(', ');
    for (const h of hosts) {
      this.rpt?.record({ policyType: 'sts', policyDomain: domain, policyString: sts.lines, mxPatterns: sts.mx, mxHost: h.name, result: 'validation-failure', detail: `MX host ${h.name} is not among ${sts.mx.join(', ')}` });
    }
    return { hosts: [], refused: `451 4.7.5 MTA-STS policy of ${domain} (enforce): no MX host (${names}) matches ${sts.mx.join(', ')}` };
  }

  /** The MX host's TLSA records (null when DANE=0). Call per MX host name before or after connecting; cached by the DNS lookup. */
  async tlsa(host: string, port: number): Promise<TlsaLookup | null> {
    if (!this.options.settings.dane) return null;
    return lookupTlsa(this.options.lookup, host, port);
  }

  /** Deliver or defer these recipients (one domain) over this session; counts the outcome for TLS-RPT. */
  decide(input: TlsDecisionInput, peerIp: string | null = null): TlsDecision {
    const d = decideTls(input);
    if (this.rpt) for (const e of d.reports) this.rpt.record(e, peerIp);
    return d;
  }

  /** Writes what TLS-RPT counted (at the end of a job). */
  async close(): Promise<void> {
    await this.rpt?.close();
  }
}
