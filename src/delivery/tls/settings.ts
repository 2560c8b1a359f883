// The verified-TLS settings of option.dat (TLS_CA_FILE, MTA_STS, MTA_STS_TIMEOUT, DANE, TLSRPT)
// with their defaults; option-dat.ts (tls-policy-options.ts) has already reported bad values.
import type { OptionsConfig } from '../../config/types.js';
import { caFilePath, TLS_POLICY_DEFAULTS } from '../../config/tls-policy-options.js';

export interface TlsPolicySettings {
  /** Extra trusted CAs, absolute path (TLS_CA_FILE); null = Node's list only. */
  caFile: string | null;
  /** Apply recipient domains' MTA-STS policies (MTA_STS; default on). */
  mtaSts: boolean;
  /** One policy fetch, ms (MTA_STS_TIMEOUT; default 10 s). */
  mtaStsTimeoutMs: number;
  /** Apply DANE TLSA records the resolver authenticates (DANE; default off). */
  dane: boolean;
  /** Write TLS-RPT daily reports under tls/tlsrpt/ (TLSRPT; default off). */
  tlsRpt: boolean;
}

export function tlsPolicySettings(options: Pick<OptionsConfig, 'raw'>, root: string): TlsPolicySettings {
  const raw = options.raw ?? {};
  const flag = (key: 'MTA_STS' | 'DANE' | 'TLSRPT') => (raw[key]?.trim() ?? String(TLS_POLICY_DEFAULTS[key])) === '1';
  const timeout = Number(raw.MTA_STS_TIMEOUT);
  return {
    caFile: caFilePath(raw.TLS_CA_FILE, root),
    mtaSts: flag('MTA_STS'),
    mtaStsTimeoutMs: Math.round((timeout > 0 ? timeout : TLS_POLICY_DEFAULTS.MTA_STS_TIMEOUT) * 1000),
    dane: flag('DANE'),
    tlsRpt: flag('TLSRPT'),
  };
}
