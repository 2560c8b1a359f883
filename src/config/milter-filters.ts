// The milter filter grammar of the configuration, as Postfix's smtpd_milters writes filters:
// `unix:/path`, `inet:host:port` (`inet:[::1]:port`), Sendmail's `inet:port@host` /
// `inet6:port@host`, and Postfix 3's per-filter overrides in braces,
// `{ inet:host:port, default_action = accept, command_timeout = 10s }` (and tsubame's
// `name = rspamd`). Pure; the configuration checks option.dat's SPAMFILTERn_MILTER with it
// (milter-options.ts) and src/milter runs the filters it describes.

/** What a filter that is down, slow or talking garbage amounts to (Postfix's milter_default_action). */
export type DefaultAction = 'tempfail' | 'accept' | 'reject' | 'quarantine' | 'shutdown';
export const DEFAULT_ACTIONS: readonly DefaultAction[] = ['tempfail', 'accept', 'reject', 'quarantine', 'shutdown'];
/** Postfix's milter_default_action. */
export const DEFAULT_MILTER_ACTION: DefaultAction = 'tempfail';

export type FilterAddress = { kind: 'unix'; path: string } | { kind: 'inet'; host: string; port: number };

export interface FilterTimeouts {
  /** Postfix's milter_connect_timeout: TCP or socket connect. */
  connectMs: number;
  /** milter_command_timeout: negotiation and every envelope event. */
  commandMs: number;
  /** milter_content_timeout: every header, body chunk and end-of-message exchange. */
  contentMs: number;
}

export interface FilterSpec {
  /** As the operator wrote it (`inet:127.0.0.1:11332`), or its `name = …` setting: names the filter in verdicts and logs. */
  name: string;
  address: FilterAddress;
  /** Per-filter overrides of the settings' timeouts and default action. */
  timeouts?: Partial<FilterTimeouts>;
  defaultAction?: DefaultAction;
}

/** Postfix's milter_connect_timeout, milter_command_timeout, milter_content_timeout. */
export const DEFAULT_MILTER_TIMEOUTS: Readonly<FilterTimeouts> = { connectMs: 30_000, commandMs: 30_000, contentMs: 300_000 };

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

function portOf(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/** One filter address: `unix:/path` (or Sendmail's `local:`), `inet:host:port`, `inet:port@host`, `inet6:port@host`. */
export function parseFilterAddress(text: string): ParseResult<FilterAddress> {
  const t = text.trim();
  const colon = t.indexOf(':');
  const transport = colon < 0 ? '' : t.slice(0, colon).toLowerCase();
  const endpoint = colon < 0 ? '' : t.slice(colon + 1);
  if (!transport || !endpoint) return { ok: false, error: `milter "${t}": expected unix:/path or inet:host:port` };
  if (transport === 'unix' || transport === 'local') {
    if (!endpoint.startsWith('/')) return { ok: false, error: `milter "${t}": a unix socket path must be absolute` };
    return { ok: true, value: { kind: 'unix', path: endpoint } };
  }
  if (transport !== 'inet' && transport !== 'inet6') return { ok: false, error: `milter "${t}": unknown transport "${transport}" (unix or inet)` };
  let host: string;
  let port: number | null;
  const at = endpoint.indexOf('@');
  if (at >= 0) {
    // Sendmail: port@host
    port = portOf(endpoint.slice(0, at));
    host = endpoint.slice(at + 1);
  } else {
    const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(endpoint);
    const last = endpoint.lastIndexOf(':');
    if (bracketed) {
      host = bracketed[1]!;
      port = portOf(bracketed[2]!);
    } else if (last >= 0) {
      host = endpoint.slice(0, last);
      port = portOf(endpoint.slice(last + 1));
      // A bare IPv6 address with a port is ambiguous: Postfix wants it in brackets.
      if (host.includes(':')) return { ok: false, error: `milter "${t}": write an IPv6 address in brackets, inet:[::1]:port` };
    } else {
      return { ok: false, error: `milter "${t}": no port (inet:host:port)` };
    }
  }
  host = host.replace(/^\[(.*)\]$/, '$1');
  if (!host) return { ok: false, error: `milter "${t}": no host` };
  if (port === null) return { ok: false, error: `milter "${t}": bad port` };
  return { ok: true, value: { kind: 'inet', host, port } };
}

/** Postfix time values: a number with an optional unit s, m, h, d, w (seconds when none). */
export function parsePostfixTime(text: string): number | null {
  const m = /^(\d+)([smhdw]?)$/i.exec(text.trim());
  if (!m) return null;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]!.toLowerCase()]!;
  return Number(m[1]) * unit * 1000;
}

const TIMEOUT_KEYS: Record<string, keyof FilterTimeouts> = {
  connect_timeout: 'connectMs',
  command_timeout: 'commandMs',
  content_timeout: 'contentMs',
};

/** One `{ address, name = value, … }` group. */
function parseGroup(body: string): ParseResult<FilterSpec> {
  const [first, ...rest] = body.split(',').map((s) => s.trim());
  if (!first) return { ok: false, error: 'milter group { … } without a filter address' };
  const address = parseFilterAddress(first);
  if (!address.ok) return address;
  const spec: FilterSpec = { name: first, address: address.value };
  for (const item of rest) {
    if (!item) continue;
    const eq = item.indexOf('=');
    const key = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : item.slice(eq + 1).trim();
    if (key === 'name') {
      // tsubame's: a short name for mail.log and the metrics (`milter:rspamd: …`) instead of the address.
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(value)) return { ok: false, error: `milter "${first}": name must be letters, digits, _ . - (such as rspamd)` };
      spec.name = value;
    } else if (key === 'default_action') {
      const a = value.toLowerCase() as DefaultAction;
      if (!DEFAULT_ACTIONS.includes(a)) return { ok: false, error: `milter "${first}": default_action must be one of ${DEFAULT_ACTIONS.join(', ')}` };
      spec.defaultAction = a;
    } else if (TIMEOUT_KEYS[key]) {
      const ms = parsePostfixTime(value);
      if (ms === null || ms === 0) return { ok: false, error: `milter "${first}": ${key} must be a time such as 30s` };
      spec.timeouts = { ...spec.timeouts, [TIMEOUT_KEYS[key]]: ms };
    } else if (key === 'protocol') {
      if (value !== '6') return { ok: false, error: `milter "${first}": only protocol 6 is spoken` };
    } else {
      return { ok: false, error: `milter "${first}": unknown setting "${key}"` };
    }
  }
  return { ok: true, value: spec };
}

/** A filter list as smtpd_milters writes it: addresses separated by commas or white space, or `{ … }` groups. */
export function parseFilterList(text: string): ParseResult<FilterSpec[]> {
  const out: FilterSpec[] = [];
  let pos = 0;
  while (pos < text.length) {
    const ch = text[pos]!;
    if (ch === ',' || /\s/.test(ch)) {
      pos++;
      continue;
    }
    if (ch === '{') {
      const close = text.indexOf('}', pos);
      if (close < 0) return { ok: false, error: 'milter list: "{" without its "}"' };
      const group = parseGroup(text.slice(pos + 1, close));
      if (!group.ok) return group;
      out.push(group.value);
      pos = close + 1;
      continue;
    }
    let end = pos;
    while (end < text.length && !/[\s,{}]/.test(text[end]!)) end++;
    const word = text.slice(pos, end);
    if (word === '' || word === '}') return { ok: false, error: 'milter list: "}" without its "{"' };
    const address = parseFilterAddress(word);
    if (!address.ok) return address;
    out.push({ name: word, address: address.value });
    pos = end;
  }
  return { ok: true, value: out };
}
