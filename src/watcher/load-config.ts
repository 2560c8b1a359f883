// Loads and validates the instance configuration for the processes this folder starts.
// TEMPORARY: src/config/load.ts is being written in parallel; until it exists a minimal
// dispatcher.cnf reader stands in, so that the process plumbing can be exercised.
import { readFileSync } from 'node:fs';
import type { DispatcherService, InstanceConfig } from '../config/types.js';
import { instancePaths } from '../common/instance.js';

/** A configuration problem, `.message` is `file:line: message`. */
export class ConfigProblem extends Error {}

interface Loader {
  loadInstanceConfigOrThrow(root: string): InstanceConfig | Promise<InstanceConfig>;
}

export async function loadConfigOrThrow(root: string): Promise<InstanceConfig> {
  let loader: Loader | null = null;
  try {
    const spec = '../config/load.js';
    loader = (await import(spec)) as Loader;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
  }
  if (loader) {
    try {
      return await loader.loadInstanceConfigOrThrow(root);
    } catch (err) {
      throw new ConfigProblem((err as Error).message);
    }
  }
  return minimalConfig(root);
}

const DEFAULTS = { MIN_PROCS: 0, MAX_PROCS: 5, MIN_CONNS: 5, MAX_CONNS: 20, MAX_HANDOFFS: 5, MAX_LIFE_TIME: 86400, MAX_LIFE_CONNS: 100, MAX_IDLE_TIME: 0, MAX_SHUTDOWN: 2 };

function minimalConfig(root: string): InstanceConfig {
  const paths = instancePaths(root);
  const file = paths.dispatcherCnf;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigProblem(`${file}:0: cannot read: ${(err as Error).message}`);
  }
  const globals: Record<string, string> = {};
  const sections: Array<{ name: string; line: number; opts: Record<string, string> }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('!')) return;
    const sec = /^\[SERVICE=([^\]]+)\]$/i.exec(line);
    if (sec) return void sections.push({ name: sec[1]!.toUpperCase(), line: i + 1, opts: {} });
    const kv = /^([A-Z_]+)\s*=\s*(.*)$/i.exec(line);
    if (!kv) throw new ConfigProblem(`${file}:${i + 1}: expected OPTION=value`);
    const key = kv[1]!.toUpperCase();
    const value = kv[2]!.trim();
    if (['PORT', 'MIN_PROCS', 'MAX_PROCS', 'MIN_CONNS', 'MAX_CONNS', 'BACKLOG', 'MAX_HANDOFFS', 'MAX_LIFE_TIME', 'MAX_LIFE_CONNS', 'MAX_IDLE_TIME', 'MAX_SHUTDOWN'].includes(key)) {
      if (!value.split(',').every((v) => /^\d+$/.test(v.trim()))) throw new ConfigProblem(`${file}:${i + 1}: ${key} must be a number`);
    }
    (sections.length ? sections[sections.length - 1]!.opts : globals)[key] = value;
  });
  const services: DispatcherService[] = sections.map((s) => {
    const o = { ...globals, ...s.opts };
    const num = (k: keyof typeof DEFAULTS) => (o[k] !== undefined ? Number(o[k]) : DEFAULTS[k]);
    const maxConns = num('MAX_CONNS');
    const maxProcs = num('MAX_PROCS');
    return {
      name: s.name,
      ports: (o.PORT ?? '25').split(',').map((p) => Number(p.trim())),
      interfaceAddress: o.INTERFACE_ADDRESS ?? null,
      minProcs: num('MIN_PROCS'),
      maxProcs,
      minConns: num('MIN_CONNS'),
      maxConns,
      maxHandoffs: num('MAX_HANDOFFS'),
      backlog: o.BACKLOG ? Number(o.BACKLOG) : Math.max(5, maxConns * maxProcs),
      maxLifeTimeSec: num('MAX_LIFE_TIME'),
      maxLifeConns: num('MAX_LIFE_CONNS'),
      maxIdleTimeSec: num('MAX_IDLE_TIME'),
      maxShutdown: num('MAX_SHUTDOWN'),
      parameters: {},
      channel: 'tcp_local',
      lmtp: false,
      file,
      line: s.line,
    };
  });
  return { root, dispatcher: { services } } as unknown as InstanceConfig;
}
