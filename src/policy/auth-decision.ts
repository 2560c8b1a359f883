// What SPF, DKIM, DMARC and ARC results make the SMTP server do (pure): the SPF decision at the
// stage the channel's keyword names (MAIL, the first RCPT, or the end of DATA) with the action
// SPF_SMTP_STATUS_* gives each result, and the message's decision at the end of DATA: a DMARC
// failure under p=reject refused with 550 5.7.1 (or held, or accepted: DMARC_REJECT_ACTION or the
// channel's dmarcrefuse / dmarchold / dmarcaccept), under
// p=quarantine as DMARC_QUARANTINE_ACTION says; a passing ARC chain sealed by a trusted sealer
// overrides a DMARC failure (RFC 8617 §7.2.1).
import { accept, hold, refuse, type PolicyDecision, type SmtpStage } from './decision.js';
import type { AuthSettings, DmarcAction, SpfAction, SpfSettings } from './auth-settings.js';

export type SpfResultCode = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'temperror';

export interface SpfOutcome {
  /** Which identity was checked: the MAIL FROM domain (or postmaster@HELO for <>), or the HELO name. */
  identity: 'mailfrom' | 'helo';
  result: SpfResultCode;
  /** The domain whose record was asked. */
  domain: string;
  ip: string;
  /** mailauth's explanation (`… does not designate … as permitted sender`, `Too many DNS requests` …). */
  comment: string | null;
  /** The record found, or null. */
  record: string | null;
  /** DNS lookups the evaluation counted (the RFC 7208 limit is SPF_MAX_DNS_QUERIES) and void ones. */
  lookups: number;
  voidLookups: number;
  /** The Authentication-Results row (`spf=pass (…) smtp.mailfrom=…`). */
  info: string;
}

export interface DkimOutcome {
  result: string; // pass, fail, neutral, policy, temperror, permerror, none
  domain: string | null;
  selector: string | null;
  algorithm: string | null;
  /** The header From domain this signature aligns with (relaxed), or null. */
  aligned: string | null;
  comment: string | null;
  info: string;
}

export interface DmarcOutcome {
  result: string; // pass, fail, none, temperror
  /** The RFC5322.From domain. */
  domain: string;
  /** The policy that applies (p=, or sp= for a subdomain), lower-case; null when there is no record. */
  policy: 'none' | 'quarantine' | 'reject' | null;
  pct: number;
  info: string;
}

export interface ArcOutcome {
  result: string; // pass, fail, none
  /** The instance of the newest ARC set, 0 when there is no chain. */
  instance: number;
  /** The d= of the newest ARC-Seal (who forwarded the message), or null. */
  sealer: string | null;
  comment: string | null;
  info: string;
}

const ACTION_OF: Record<SpfResultCode, keyof Pick<SpfSettings, 'onFail' | 'onSoftfail' | 'onPermerror' | 'onTemperror'> | null> = {
  fail: 'onFail',
  softfail: 'onSoftfail',
  permerror: 'onPermerror',
  temperror: 'onTemperror',
  pass: null,
  neutral: null,
  none: null,
};

/** The action SPF_SMTP_STATUS_* gives this result (accept for pass, neutral, none). */
function spfAction(outcome: SpfOutcome, spf: SpfSettings): SpfAction {
  const key = ACTION_OF[outcome.result];
  return key ? spf[key] : 'accept';
}

/**
 * The SPF decision at `stage`. Refusals are given at the stage the channel's keyword names
 * (spfmailfrom: MAIL, spfrcptto: RCPT, spfdata: end of DATA) and not elsewhere; a hold is applied
 * at the end of DATA whatever the keyword (there is no message to hold before).
 */
export function spfDecision(outcome: SpfOutcome, spf: SpfSettings, stage: SmtpStage): PolicyDecision {
  const action = spfAction(outcome, spf);
  const reason = `SPF ${outcome.result} for ${outcome.identity === 'helo' ? 'HELO' : 'MAIL FROM'} ${outcome.domain} from ${outcome.ip}`;
  if (action === 'accept' || spf.stage === 'none') return accept(outcome.result === 'pass' || outcome.result === 'none' ? null : `${reason}: accepted`);
  if (action === 'hold') return stage === 'data' ? hold(`${reason}: held (${outcome.result === 'fail' && spf.onFailKeyword ? spf.onFailKeyword : `SPF_SMTP_STATUS_${outcome.result.toUpperCase()}=H`})`) : accept(null);
  const own = spf.stage === stage || (outcome.identity === 'helo' && stage === 'helo');
  if (!own) return accept(null);
  const temporary = action === 'tempfail';
  const [code, enhanced] = outcome.result === 'fail' || outcome.result === 'softfail' ? [temporary ? 451 : 550, temporary ? '4.7.23' : '5.7.23'] : [temporary ? 451 : 550, temporary ? '4.7.24' : '5.7.24'];
  return refuse(code, enhanced, spfText(outcome), `${reason}: ${temporary ? 'refused for now' : 'refused'}`);
}

function spfText(o: SpfOutcome): string {
  switch (o.result) {
    case 'fail':
      return `SPF fail: ${o.domain} does not allow ${o.ip} to send its mail`;
    case 'softfail':
      return `SPF softfail: ${o.domain} does not expect mail from ${o.ip}`;
    case 'permerror':
      return `SPF permerror: the SPF record of ${o.domain} cannot be used${o.comment ? ` (${tail(o.comment)})` : ''}`;
    default:
      return `SPF temperror: the SPF record of ${o.domain} could not be checked, try again later`;
  }
}

/** The part of mailauth's comment after "…: " (the reason), bounded. */
function tail(comment: string): string {
  const reason = comment.slice(comment.lastIndexOf(': ') + 2);
  return reason.length > 100 ? `${reason.slice(0, 100)}...` : reason;
}

export interface MessageAuthResults {
  spf: SpfOutcome | null;
  heloSpf: SpfOutcome | null;
  dkim: DkimOutcome[];
  dmarc: DmarcOutcome | null;
  arc: ArcOutcome | null;
}

/** The end-of-DATA decision: DMARC policy, ARC override, and SPF when the channel has spfdata or a hold action. */
export function messageDecision(r: MessageAuthResults, settings: AuthSettings): PolicyDecision {
  const decisions: PolicyDecision[] = [];
  const dmarc = r.dmarc;
  const dmarcPass = dmarc?.result === 'pass';
  for (const spf of [r.heloSpf, r.spf]) {
    if (!spf) continue;
    // spfdata is the forwarding-friendly stage: a message whose DMARC passes (through DKIM) is not refused for SPF.
    const d = spfDecision(spf, settings.spf, 'data');
    decisions.push(d.action === 'refuse' && dmarcPass ? accept(`${d.reason!.replace(/: refused.*$/, '')}: accepted, DMARC passes`) : d);
  }
  if (dmarc?.result === 'fail' && (dmarc.policy === 'reject' || dmarc.policy === 'quarantine')) {
    // pct below 100: the domain asks for its policy on part of its mail only; tsubame never refuses then, it applies the next policy down (RFC 7489 §6.6.4).
    const policy = dmarc.policy === 'reject' && dmarc.pct < 100 ? 'quarantine' : dmarc.policy;
    const action: DmarcAction = policy === 'reject' ? settings.dmarcReject : settings.dmarcQuarantine;
    // The channel keyword that decided, when one did (an operator reading mail.log looks for it in imta.cnf, not option.dat).
    const by = policy === 'reject' && settings.dmarcRejectKeyword ? ` (${settings.dmarcRejectKeyword})` : '';
    const reason = `DMARC fail for ${dmarc.domain} (p=${dmarc.policy}${dmarc.pct < 100 ? ` pct=${dmarc.pct}` : ''})`;
    const sealer = r.arc?.result === 'pass' ? r.arc.sealer : null;
    if (sealer && settings.arcTrustedSealers.includes(sealer)) decisions.push(accept(`${reason}: accepted, ARC chain sealed by trusted ${sealer} passes`));
    else if (action === 'refuse') decisions.push(refuse(550, '5.7.1', `message refused: ${dmarc.domain} publishes a DMARC policy of ${policy} and the message fails it`, `${reason}: refused${by}`));
    else if (action === 'hold') decisions.push(hold(`${reason}: held${by}`));
    else decisions.push(accept(`${reason}: accepted${by}`));
  } else if (dmarc?.result === 'temperror') {
    decisions.push(accept(`DMARC temperror for ${dmarc.domain}: accepted`));
  }
  return (
    decisions.find((d) => d.action === 'refuse') ??
    decisions.find((d) => d.action === 'hold') ??
    accept(decisions.map((d) => d.reason).filter(Boolean).join('; ') || null)
  );
}
