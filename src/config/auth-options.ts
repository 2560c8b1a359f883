// The option.dat keys of message authentication (SPF, DKIM, DMARC, ARC) with their defaults and
// what each takes: option-dat.ts checks them with file:line, src/policy/auth-settings.ts reads them.
// SPF_MAX_DNS_QUERIES, SPF_MAX_TIME and SPF_SMTP_STATUS_* are Messaging Server's names.

export const AUTH_DEFAULTS = {
  SPF_MAX_DNS_QUERIES: 10,
  SPF_MAX_VOID_QUERIES: 2,
  SPF_MAX_TIME: 45,
  SPF_SMTP_STATUS_FAIL: '5',
  SPF_SMTP_STATUS_SOFTFAIL: '2',
  SPF_SMTP_STATUS_PERMERROR: '2',
  SPF_SMTP_STATUS_TEMPERROR: '2',
  DKIM_MAX_SIGNATURES: 10,
  DKIM_MIN_KEY_BITS: 1024,
  AUTH_MAX_TIME: 20,
  DMARC_REJECT_ACTION: 'refuse',
  DMARC_QUARANTINE_ACTION: 'accept',
  ARC_TRUSTED_SEALERS: '',
} as const;

/** The keys option-dat.ts accepts and checks, with what each takes. */
export type AuthOptionRule =
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'seconds'; max: number }
  | { kind: 'words'; words: string[] }
  | { kind: 'domains' };

export const AUTH_OPTION_RULES: Record<keyof typeof AUTH_DEFAULTS, AuthOptionRule> = {
  SPF_MAX_DNS_QUERIES: { kind: 'integer', min: 1, max: 100 },
  SPF_MAX_VOID_QUERIES: { kind: 'integer', min: 1, max: 100 },
  SPF_MAX_TIME: { kind: 'seconds', max: 600 },
  SPF_SMTP_STATUS_FAIL: { kind: 'words', words: ['2', '4', '5', 'H'] },
  SPF_SMTP_STATUS_SOFTFAIL: { kind: 'words', words: ['2', '4', '5', 'H'] },
  SPF_SMTP_STATUS_PERMERROR: { kind: 'words', words: ['2', '4', '5', 'H'] },
  SPF_SMTP_STATUS_TEMPERROR: { kind: 'words', words: ['2', '4', '5', 'H'] },
  DKIM_MAX_SIGNATURES: { kind: 'integer', min: 1, max: 100 },
  DKIM_MIN_KEY_BITS: { kind: 'integer', min: 512, max: 16384 },
  AUTH_MAX_TIME: { kind: 'seconds', max: 600 },
  DMARC_REJECT_ACTION: { kind: 'words', words: ['refuse', 'hold', 'accept'] },
  DMARC_QUARANTINE_ACTION: { kind: 'words', words: ['refuse', 'hold', 'accept'] },
  ARC_TRUSTED_SEALERS: { kind: 'domains' },
};

/**
 * tsubame's per-channel overrides of DMARC_REJECT_ACTION: the keyword is the option's value after
 * `dmarc` (the value it stands for), written on the channel a service runs as.
 */
export const DMARC_REJECT_KEYWORDS: Readonly<Record<string, string>> = { dmarcrefuse: 'refuse', dmarchold: 'hold', dmarcaccept: 'accept' };
/** tsubame's per-channel overrides of SPF_SMTP_STATUS_FAIL: `spffail` and the option's value (2, 4, 5, H). */
export const SPF_FAIL_KEYWORDS: Readonly<Record<string, string>> = { spffail2: '2', spffail4: '4', spffail5: '5', spffailh: 'H' };

/** Channel keywords: Messaging Server's SPF keywords, tsubame's spfdata, the verification switch and the action overrides. */
export const AUTH_CHANNEL_KEYWORDS = ['spfnone', 'spfhelo', 'spfmailfrom', 'spfrcptto', 'spfdata', 'authverify', 'noauthverify', ...Object.keys(DMARC_REJECT_KEYWORDS), ...Object.keys(SPF_FAIL_KEYWORDS)];

/** Keywords of which a channel block may write one only: each group sets one action, two would contradict. */
export const AUTH_EXCLUSIVE_KEYWORDS: readonly string[][] = [Object.keys(DMARC_REJECT_KEYWORDS), Object.keys(SPF_FAIL_KEYWORDS)];
