// The option.dat keys of verified outbound TLS (TLS_CA_FILE, MTA_STS, MTA_STS_TIMEOUT, DANE,
// TLSRPT) with their defaults: option-dat.ts checks them with file:line (a CA file that cannot be
// read or holds no certificate is an error), src/delivery/tls/settings.ts reads them.
import { isAbsolute, resolve } from 'node:path';
import { readCaFile } from './ca-file.js';
import type { OptionEntry, OptionReader } from './option-file.js';

export const TLS_POLICY_DEFAULTS = {
  /** Look up and apply MTA-STS policies (RFC 8461). */
  MTA_STS: 1,
  /** Seconds one MTA-STS policy fetch may take. */
  MTA_STS_TIMEOUT: 10,
  /** Look up TLSA records and apply DANE (RFC 7672) when the resolver authenticates them. */
  DANE: 0,
  /** Write TLS-RPT (RFC 8460) daily reports of policy domains. */
  TLSRPT: 0,
} as const;

export const TLS_POLICY_KEYS = ['TLS_CA_FILE', ...Object.keys(TLS_POLICY_DEFAULTS)];

/** TLS_CA_FILE as a path: relative ones are taken from the instance directory. */
export function caFilePath(value: string | undefined, root: string | null): string | null {
  const v = value?.trim();
  if (!v) return null;
  return isAbsolute(v) || !root ? v : resolve(root, v);
}

/** Reports bad values with file:line. `root`: the instance, for a relative TLS_CA_FILE (null: not checked on disk). */
export function checkTlsPolicyOptions(o: Map<string, OptionEntry>, reader: OptionReader, root: string | null): void {
  for (const key of ['MTA_STS', 'DANE', 'TLSRPT'] as const) {
    const e = o.get(key);
    if (e && !/^[01]$/.test(e.value.trim())) reader.error(e, `${key} must be 0 (off) or 1 (on), found "${e.value}"`);
  }
  const timeout = o.get('MTA_STS_TIMEOUT');
  if (timeout && !(Number(timeout.value) > 0 && Number(timeout.value) <= 600)) reader.error(timeout, `MTA_STS_TIMEOUT must be a number of seconds above 0 and at most 600, found "${timeout.value}"`);
  const ca = o.get('TLS_CA_FILE');
  const path = caFilePath(ca?.value, root);
  if (ca && path && (root !== null || isAbsolute(path))) {
    try {
      readCaFile(path);
    } catch (err) {
      reader.error(ca, (err as Error).message);
    }
  }
}
