// etc/job_controller.cnf: globals, `[POOL=NAME] JOB_LIMIT`, `[CHANNEL=name]` or `[CHANNEL=prefix*]`
// (reference §2). Pool and channel options written globally are the defaults of every section.
import { OptionReader, readOptionFile, type OptionEntry } from './option-file.js';
import { parseIsoDuration } from './durations.js';
import type { ChannelJobSection, Diagnostic, JobControllerConfig, PoolConfig } from './types.js';

export const JOB_CONTROLLER_DEFAULTS = {
  MAX_MESSAGES: 100000,
  SYNCH_TIME: 4 * 3600,
  REBUILD_PARALLEL_CHANNEL: 12,
  JOB_LIMIT: 10,
  MAX_LIFE_AGE: 3600,
  MAX_LIFE_CONNS: 10000,
  PERIODIC_INTERVAL: 1800,
} as const;

/** The configuration in force without a job_controller.cnf: one DEFAULT pool, every default. */
export function defaultJobControllerConfig(): JobControllerConfig {
  const d = JOB_CONTROLLER_DEFAULTS;
  return {
    maxMessages: d.MAX_MESSAGES,
    synchTimeSec: d.SYNCH_TIME,
    rebuildParallelChannel: d.REBUILD_PARALLEL_CHANNEL,
    pools: [{ name: 'DEFAULT', jobLimit: d.JOB_LIMIT }],
    channels: [],
    maxLifeAgeSec: d.MAX_LIFE_AGE,
    maxLifeConns: d.MAX_LIFE_CONNS,
    periodicIntervalSec: d.PERIODIC_INTERVAL,
  };
}

const GLOBAL_ONLY = ['TCP_PORT', 'INTERFACE_ADDRESS', 'SECRET', 'DEBUG', 'MAX_MESSAGES', 'SYNCH_TIME', 'REBUILD_IN_ORDER', 'REBUILD_PARALLEL_CHANNEL', 'PERIODIC_INTERVAL'];
const POOL_KEYS = ['JOB_LIMIT'];
const CHANNEL_KEYS = ['MASTER_COMMAND', 'SLAVE_COMMAND', 'MAX_LIFE_AGE', 'MAX_LIFE_CONNS', 'MAX_LIFE_ASKWORK', 'ANON_HOST', 'URGENT_DELIVERY', 'NORMAL_DELIVERY', 'NONURGENT_DELIVERY'];

export function parseJobControllerCnf(file: string, diagnostics: Diagnostic[]): JobControllerConfig {
  const parsed = readOptionFile(file, { commentChars: '!', sectionTypes: ['POOL', 'CHANNEL', 'PERIODIC_JOB'] }, diagnostics);
  const reader = new OptionReader(diagnostics);
  const g = reader.collect(parsed.globals, new Set([...GLOBAL_ONLY, ...POOL_KEYS, ...CHANNEL_KEYS]), 'job_controller.cnf globals');
  const lifeConns = (map: Map<string, OptionEntry>) => map.get('MAX_LIFE_CONNS') ?? map.get('MAX_LIFE_ASKWORK');
  const config: JobControllerConfig = {
    maxMessages: reader.integer(g.get('MAX_MESSAGES'), JOB_CONTROLLER_DEFAULTS.MAX_MESSAGES, 1),
    synchTimeSec: intervalSeconds(g.get('SYNCH_TIME'), reader),
    periodicIntervalSec: intervalSeconds(g.get('PERIODIC_INTERVAL'), reader, JOB_CONTROLLER_DEFAULTS.PERIODIC_INTERVAL),
    rebuildParallelChannel: reader.integer(g.get('REBUILD_PARALLEL_CHANNEL'), JOB_CONTROLLER_DEFAULTS.REBUILD_PARALLEL_CHANNEL, 1, 100),
    pools: [],
    channels: [],
    maxLifeAgeSec: reader.integer(g.get('MAX_LIFE_AGE'), JOB_CONTROLLER_DEFAULTS.MAX_LIFE_AGE, 1),
    maxLifeConns: reader.integer(lifeConns(g), JOB_CONTROLLER_DEFAULTS.MAX_LIFE_CONNS, 1),
  };
  const defaultJobLimit = reader.integer(g.get('JOB_LIMIT'), JOB_CONTROLLER_DEFAULTS.JOB_LIMIT, 1, 10000);
  for (const section of parsed.sections) {
    if (section.type === 'PERIODIC_JOB') {
      reader.warning(section, '[PERIODIC_JOB=…] sections are deprecated and ignored');
      continue;
    }
    if (section.type === 'POOL') {
      const o = reader.collect(section.entries, new Set(POOL_KEYS), `[POOL=${section.name}]`);
      if (config.pools.some((p) => p.name.toUpperCase() === section.name.toUpperCase())) {
        reader.error(section, `[POOL=${section.name}] appears twice`);
        continue;
      }
      const pool: PoolConfig = { name: section.name, jobLimit: reader.integer(o.get('JOB_LIMIT'), defaultJobLimit, 1, 10000) };
      config.pools.push(pool);
      continue;
    }
    const o = reader.collect(section.entries, new Set(CHANNEL_KEYS), `[CHANNEL=${section.name}]`);
    const wildcard = section.name.endsWith('*');
    const pattern = wildcard ? section.name.slice(0, -1) : section.name;
    if (pattern.includes('*')) reader.error(section, `[CHANNEL=${section.name}]: only a trailing * is allowed`);
    if (config.channels.some((c) => c.wildcard === wildcard && c.pattern === pattern.toLowerCase())) {
      reader.error(section, `[CHANNEL=${section.name}] appears twice`);
      continue;
    }
    const master = o.get('MASTER_COMMAND')?.value ?? g.get('MASTER_COMMAND')?.value ?? null;
    const life = o.get('MAX_LIFE_AGE');
    const conns = lifeConns(o);
    const entry: ChannelJobSection = {
      pattern: pattern.toLowerCase(),
      wildcard,
      masterCommand: master,
      maxLifeAgeSec: life ? reader.integer(life, config.maxLifeAgeSec, 1) : null,
      maxLifeConns: conns ? reader.integer(conns, config.maxLifeConns, 1) : null,
    };
    config.channels.push(entry);
  }
  if (config.pools.length === 0) config.pools.push({ name: 'DEFAULT', jobLimit: defaultJobLimit });
  return config;
}

/** An interval (SYNCH_TIME, PERIODIC_INTERVAL): seconds, `HH:MM` or an ISO 8601 duration. */
function intervalSeconds(entry: OptionEntry | undefined, reader: OptionReader, fallback: number = JOB_CONTROLLER_DEFAULTS.SYNCH_TIME): number {
  if (!entry) return fallback;
  const v = entry.value.trim();
  if (/^\d+$/.test(v) && Number(v) > 0) return Number(v);
  const hm = /^(\d{1,2}):(\d{2})$/.exec(v);
  if (hm && Number(hm[2]) < 60 && Number(hm[1]) * 60 + Number(hm[2]) > 0) return Number(hm[1]) * 3600 + Number(hm[2]) * 60;
  const ms = parseIsoDuration(v);
  if (ms !== null && ms > 0) return Math.max(1, Math.round(ms / 1000));
  reader.error(entry, `${entry.key} must be seconds, HH:MM or an ISO 8601 duration, found "${v}"`);
  return fallback;
}

/** The [CHANNEL] section that applies to a channel: an exact name wins over the longest prefix. */
export function channelJobSection(config: JobControllerConfig, channel: string): ChannelJobSection | null {
  const name = channel.toLowerCase();
  const exact = config.channels.find((c) => !c.wildcard && c.pattern === name);
  if (exact) return exact;
  const prefixes = config.channels.filter((c) => c.wildcard && name.startsWith(c.pattern));
  return prefixes.sort((a, b) => b.pattern.length - a.pattern.length)[0] ?? null;
}
