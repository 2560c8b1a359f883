// Checks a new configuration before a reload: the files (src/config/load.ts) and what each SMTP
// service derives from them (a musttlsserver channel without TLS_KEY/TLS_CERT is caught here, not
// in a server process after the switch).
import { loadInstanceConfig } from '../config/load.js';
import { formatDiagnostic, type InstanceConfig } from '../config/types.js';
import { resolveInboundSettings } from '../smtp-server/settings.js';

export type Validation = { ok: true; config: InstanceConfig; warnings: string[] } | { ok: false; errors: string[] };

/** The whole configuration as a reload would apply it; every error as one `file:line: …` line. */
export function validateConfig(root: string): Validation {
  let result: ReturnType<typeof loadInstanceConfig>;
  try {
    result = loadInstanceConfig(root);
  } catch (err) {
    return { ok: false, errors: [(err as Error).message] };
  }
  const { config, diagnostics } = result;
  if (!config) return { ok: false, errors: diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic) };
  const errors: string[] = [];
  for (const service of config.dispatcher.services) {
    try {
      resolveInboundSettings(config, service.name);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config, warnings: diagnostics.filter((d) => d.severity === 'warning').map(formatDiagnostic) };
}
