// Message authentication settings (pure): option.dat's SPF_* (Messaging Server's names), DKIM_*,
// DMARC_*, ARC_* and AUTH_MAX_TIME with their defaults, and the keywords of the channel a service
// runs as: spfnone / spfhelo / spfmailfrom / spfrcptto (Messaging Server's), spfdata and
// authverify / noauthverify (tsubame's), and tsubame's per-channel overrides of two options, which
// win over option.dat: dmarcrefuse / dmarchold / dmarcaccept for DMARC_REJECT_ACTION and
// spffail2 / spffail4 / spffail5 / spffailh for SPF_SMTP_STATUS_FAIL. option-dat.ts reports bad
// values with file:line (imta-cnf.ts two overrides of one option on a channel); here a bad or
// absent value is its default.
import type { Channel, OptionsConfig } from '../config/types.js';
import { AUTH_DEFAULTS, AUTH_OPTION_RULES, DMARC_REJECT_KEYWORDS, SPF_FAIL_KEYWORDS } from '../config/auth-options.js';

/** What an SPF result makes the SMTP server do: Messaging Server's 2 / 4 / 5, and tsubame's H. */
export type SpfAction = 'accept' | 'tempfail' | 'refuse' | 'hold';
/** Where the SPF decision is applied: not at all, at MAIL, at the first accepted RCPT, or at the end of DATA. */
export type SpfStage = 'none' | 'mail' | 'rcpt' | 'data';
export type DmarcAction = 'refuse' | 'hold' | 'accept';

export interface SpfSettings {
  stage: SpfStage;
  /** spfhelo: the HELO/EHLO name is checked too (and stands for the sender of a null MAIL FROM). */
  helo: boolean;
  maxDnsQueries: number;
  maxVoidQueries: number;
  maxTimeMs: number;
  onFail: SpfAction;
  onSoftfail: SpfAction;
  onPermerror: SpfAction;
  onTemperror: SpfAction;
  /** The channel keyword that set onFail (spffailh …), or null when SPF_SMTP_STATUS_FAIL did: named in the log. */
  onFailKeyword: string | null;
}

export interface AuthSettings {
  /** The authserv-id of the Authentication-Results header: LOCAL_HOST. */
  authservId: string;
  /** authverify (default) / noauthverify: DKIM, DMARC and ARC checked and the header added. */
  verify: boolean;
  spf: SpfSettings;
  dkimMaxSignatures: number;
  dkimMinKeyBits: number;
  /** The time DKIM, ARC and DMARC lookups of one message may take together. */
  maxTimeMs: number;
  /** Most DNS questions one message's verification asks (signatures, ARC sets, DMARC, with room). */
  maxDnsQueries: number;
  dmarcReject: DmarcAction;
  /** The channel keyword that set dmarcReject (dmarchold …), or null when DMARC_REJECT_ACTION did. */
  dmarcRejectKeyword: string | null;
  dmarcQuarantine: DmarcAction;
  /** Sealers (the d= of the newest ARC-Seal) whose passing ARC chain overrides a DMARC failure. */
  arcTrustedSealers: string[];
}

const SPF_ACTIONS: Record<string, SpfAction> = { '2': 'accept', '4': 'tempfail', '5': 'refuse', H: 'hold' };

/** The settings for mail arriving on `channel` (the channel the service runs as). */
export function authSettings(options: Pick<OptionsConfig, 'raw' | 'localHost'>, channel: Pick<Channel, 'keywords'> | undefined): AuthSettings {
  const raw = options.raw ?? {};
  const integer = (key: 'SPF_MAX_DNS_QUERIES' | 'SPF_MAX_VOID_QUERIES' | 'DKIM_MAX_SIGNATURES' | 'DKIM_MIN_KEY_BITS') => {
    const rule = AUTH_OPTION_RULES[key] as { min: number; max: number };
    const v = Number(raw[key]?.trim());
    return raw[key] !== undefined && Number.isInteger(v) && v >= rule.min && v <= rule.max ? v : AUTH_DEFAULTS[key];
  };
  const ms = (key: 'SPF_MAX_TIME' | 'AUTH_MAX_TIME') => {
    const v = Number(raw[key]?.trim());
    return Math.round((raw[key] !== undefined && v > 0 && v <= 600 ? v : AUTH_DEFAULTS[key]) * 1000);
  };
  const word = <T extends string>(key: keyof typeof AUTH_DEFAULTS): T => {
    const rule = AUTH_OPTION_RULES[key] as { words: string[] };
    const given = raw[key]?.trim();
    const found = given === undefined ? undefined : rule.words.find((w) => w.toLowerCase() === given.toLowerCase());
    return (found ?? AUTH_DEFAULTS[key]) as T;
  };
  const spfAction = (key: 'SPF_SMTP_STATUS_FAIL' | 'SPF_SMTP_STATUS_SOFTFAIL' | 'SPF_SMTP_STATUS_PERMERROR' | 'SPF_SMTP_STATUS_TEMPERROR') => SPF_ACTIONS[word(key)]!;
  const keywords = channel?.keywords ?? {};
  const has = (k: string) => Object.prototype.hasOwnProperty.call(keywords, k);
  // The channel's override of an option: imta-cnf.ts lets a channel keep one keyword of each table (an error otherwise).
  const override = (table: Readonly<Record<string, string>>) => Object.keys(keywords).filter((k) => Object.prototype.hasOwnProperty.call(table, k)).pop() ?? null;
  const spfFailKeyword = override(SPF_FAIL_KEYWORDS);
  const dmarcRejectKeyword = override(DMARC_REJECT_KEYWORDS);
  // Messaging Server: spfmailfrom and spfrcptto conflict; the last one written is not known here, so the earlier stage wins.
  const stage: SpfStage = has('spfnone') ? 'none' : has('spfmailfrom') ? 'mail' : has('spfrcptto') ? 'rcpt' : has('spfdata') ? 'data' : 'mail';
  const dkimMaxSignatures = integer('DKIM_MAX_SIGNATURES');
  return {
    authservId: options.localHost,
    verify: !has('noauthverify'),
    spf: {
      stage,
      helo: has('spfhelo') && stage !== 'none',
      maxDnsQueries: integer('SPF_MAX_DNS_QUERIES'),
      maxVoidQueries: integer('SPF_MAX_VOID_QUERIES'),
      maxTimeMs: ms('SPF_MAX_TIME'),
      onFail: spfFailKeyword ? SPF_ACTIONS[SPF_FAIL_KEYWORDS[spfFailKeyword]!]! : spfAction('SPF_SMTP_STATUS_FAIL'),
      onSoftfail: spfAction('SPF_SMTP_STATUS_SOFTFAIL'),
      onPermerror: spfAction('SPF_SMTP_STATUS_PERMERROR'),
      onTemperror: spfAction('SPF_SMTP_STATUS_TEMPERROR'),
      onFailKeyword: spfFailKeyword,
    },
    dkimMaxSignatures,
    dkimMinKeyBits: integer('DKIM_MIN_KEY_BITS'),
    maxTimeMs: ms('AUTH_MAX_TIME'),
    // A key per signature, one per ARC set (at most 50), the DMARC record and its organisational domain.
    maxDnsQueries: dkimMaxSignatures + 50 + 8,
    dmarcReject: dmarcRejectKeyword ? (DMARC_REJECT_KEYWORDS[dmarcRejectKeyword] as DmarcAction) : word<DmarcAction>('DMARC_REJECT_ACTION'),
    dmarcRejectKeyword,
    dmarcQuarantine: word<DmarcAction>('DMARC_QUARANTINE_ACTION'),
    arcTrustedSealers: (raw.ARC_TRUSTED_SEALERS ?? '')
      .split(/[,\s]+/)
      .map((d) => d.trim().toLowerCase().replace(/\.$/, ''))
      .filter(Boolean),
  };
}
