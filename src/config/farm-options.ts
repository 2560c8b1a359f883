// option.dat's farm options: several tsubame nodes behind one load balancer sharing their traffic
// shaping through Redis (docs/OPERATIONS.md "Running a farm"). FARM_REDIS_URL names the Redis
// server (none: the node shapes alone, as before), FARM_NODE_NAME this node (default LOCAL_HOST),
// FARM_NODE_COUNT how many nodes share the limits (each node's share of a limit while Redis is
// unreachable), FARM_LEASE_TTL how long a node's connection leases outlive it.
import type { OptionEntry, OptionReader } from './option-file.js';
import type { FarmOptions } from './types.js';

export const FARM_OPTION_KEYS = ['FARM_REDIS_URL', 'FARM_NODE_NAME', 'FARM_NODE_COUNT', 'FARM_LEASE_TTL'];

const FARM_DEFAULTS = { FARM_NODE_COUNT: 1, FARM_LEASE_TTL: 30 } as const;

export function parseFarmOptions(o: Map<string, OptionEntry>, reader: OptionReader, localHost: string): FarmOptions {
  const urlEntry = o.get('FARM_REDIS_URL');
  let redisUrl: string | null = null;
  if (urlEntry && urlEntry.value.trim() !== '') {
    const problem = redisUrlProblem(urlEntry.value.trim());
    if (problem) reader.error(urlEntry, problem);
    else redisUrl = urlEntry.value.trim();
  }
  const nameEntry = o.get('FARM_NODE_NAME');
  let nodeName = localHost;
  if (nameEntry) {
    if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(nameEntry.value.trim())) nodeName = nameEntry.value.trim();
    else reader.error(nameEntry, `FARM_NODE_NAME must be letters, digits, '.', '_' or '-' (at most 63), found "${nameEntry.value}"`);
  }
  const nodeCount = reader.integer(o.get('FARM_NODE_COUNT'), FARM_DEFAULTS.FARM_NODE_COUNT, 1, 1000);
  const leaseTtlMs = reader.integer(o.get('FARM_LEASE_TTL'), FARM_DEFAULTS.FARM_LEASE_TTL, 3, 3600) * 1000;
  if (!redisUrl) {
    for (const key of ['FARM_NODE_COUNT', 'FARM_LEASE_TTL']) {
      const e = o.get(key);
      if (e) reader.warning(e, `${key} has no effect without FARM_REDIS_URL`);
    }
  }
  return { redisUrl, nodeName, nodeCount, leaseTtlMs };
}

/** Why `text` is not a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS); null when it is one. */
function redisUrlProblem(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `FARM_REDIS_URL must be a URL such as redis://10.0.0.5:6379/0, found "${redactedRedisUrl(text)}"`;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return `FARM_REDIS_URL must start with redis:// or rediss://, found "${redactedRedisUrl(text)}"`;
  if (!url.hostname) return 'FARM_REDIS_URL names no host';
  if (url.pathname && url.pathname !== '/' && !/^\/\d{1,2}$/.test(url.pathname)) return `FARM_REDIS_URL: the path must be a database number (such as /0), found "${url.pathname}"`;
  return null;
}

/** The URL with its password replaced, for logs and messages. */
export function redactedRedisUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/]*:)?[^@/]*@/i, (_m, scheme: string, user: string | undefined) => `${scheme}${user ?? ''}***@`);
}
