// The instance configuration for the queue tools, when it can be had. The queue manager must keep
// working on the queue files when imta.cnf is broken, so a failure is reported, not thrown.
import { loadInstanceConfigOrThrow } from '../config/load.js';
import type { InstanceConfig } from '../config/types.js';

export function loadConfigIfPossible(root: string): { config: InstanceConfig | null; error: string | null } {
  try {
    return { config: loadInstanceConfigOrThrow(root), error: null };
  } catch (err) {
    return { config: null, error: (err as Error).message ?? String(err) };
  }
}
