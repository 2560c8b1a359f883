// The instance configuration for the queue tools, when it can be had. The queue manager must keep
// working on the queue files when imta.cnf is broken, so a failure is reported, not thrown.
import type { InstanceConfig } from '../config/types.js';

type Loader = (root: string) => InstanceConfig;

export async function loadConfigIfPossible(root: string): Promise<{ config: InstanceConfig | null; error: string | null }> {
  try {
    // Loaded by name at run time: the queue tools must start even when the config module cannot load.
    const specifier = '../config/load.js';
    const mod = (await import(specifier)) as { loadInstanceConfigOrThrow: Loader };
    return { config: mod.loadInstanceConfigOrThrow(root), error: null };
  } catch (err) {
    return { config: null, error: (err as Error).message ?? String(err) };
  }
}
