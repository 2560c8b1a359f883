// The cached lookup behind a function shaped like node's dns.promises.resolve(name, rrtype), for
// libraries that take a resolver (mailauth): the same answers (A/AAAA/PTR/NS/CNAME strings, TXT as
// arrays of strings, MX as {exchange, priority}) and the same error codes (ENOTFOUND, ENODATA,
// ETIMEOUT, ESERVFAIL). One is made per piece of work, with a deadline and a query budget: past
// either, every question fails at once with ETIMEOUT, so the work ends in bounded time.
import type { RecordType } from 'dns-packet';
import type { RrsetResult, RrsetSource } from './lookup.js';

export type NodeStyleResolver = (name: string, rrtype?: string) => Promise<unknown[]>;

export interface ResolverBudget {
  /** Epoch ms after which no question is asked or waited for. */
  deadline: number;
  /** Most questions (cache hits included) this resolver answers. */
  maxQueries: number;
}

export interface CountingResolver extends NodeStyleResolver {
  /** Questions asked through this resolver so far. */
  readonly queries: number;
  /** Whether the deadline or the budget cut a question short. */
  readonly exhausted: boolean;
}

const TYPES = new Set(['A', 'AAAA', 'TXT', 'MX', 'PTR', 'NS', 'CNAME']);

class ResolveError extends Error {
  constructor(
    readonly code: 'ENOTFOUND' | 'ENODATA' | 'ETIMEOUT' | 'ESERVFAIL' | 'ENOTIMP',
    readonly hostname: string,
    reason: string,
  ) {
    super(`${reason} ${hostname}`);
    this.name = 'ResolveError';
  }
}

export function nodeStyleResolver(lookup: RrsetSource, budget: ResolverBudget, now: () => number = Date.now): CountingResolver {
  let queries = 0;
  let exhausted = false;
  const resolve = async (name: string, rrtype = 'A'): Promise<unknown[]> => {
    const type = rrtype.toUpperCase();
    if (!TYPES.has(type)) throw new ResolveError('ENOTIMP', name, `query type ${type} not supported for`);
    const left = budget.deadline - now();
    if (left <= 0 || queries >= budget.maxQueries) {
      exhausted = true;
      throw new ResolveError('ETIMEOUT', name, left <= 0 ? 'time budget spent before asking' : 'query budget spent before asking');
    }
    queries++;
    const owner = name.replace(/\.$/, '');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<RrsetResult>((r) => {
      timer = setTimeout(() => {
        exhausted = true;
        r({ status: 'temporary', reason: 'timeout' });
      }, left);
    });
    const answer = await Promise.race([lookup.rrset(owner, type as RecordType), late]).finally(() => clearTimeout(timer));
    return toNodeAnswer(answer, type, owner);
  };
  return Object.defineProperties(resolve, {
    queries: { get: () => queries },
    exhausted: { get: () => exhausted },
  }) as CountingResolver;
}

function toNodeAnswer(answer: RrsetResult, type: string, name: string): unknown[] {
  switch (answer.status) {
    case 'nxdomain':
      throw new ResolveError('ENOTFOUND', name, `${type} NXDOMAIN`);
    case 'nodata':
      throw new ResolveError('ENODATA', name, `no ${type} record for`);
    case 'temporary':
      throw new ResolveError(answer.reason === 'timeout' ? 'ETIMEOUT' : 'ESERVFAIL', name, `${type} lookup failed (${answer.reason}) for`);
  }
  return answer.records.map((r) => {
    const data = (r as { data: unknown }).data;
    if (type === 'TXT') return (Array.isArray(data) ? data : [data]).map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : String(p)));
    if (type === 'MX') {
      const mx = data as { exchange: string; preference?: number };
      return { exchange: mx.exchange.replace(/\.$/, ''), priority: mx.preference ?? 0 };
    }
    return typeof data === 'string' ? data.replace(/\.$/, '') : data;
  });
}
