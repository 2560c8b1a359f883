// etc/imta.cnf: rewrite rules up to the first blank line, then channel blocks separated by blank
// lines (reference §3). `!` in column 1 is a comment, `<file` in column 1 an include (3 deep),
// `\` at the end of a line continues it.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { compileTemplate } from './rewrite-template.js';
import { parseIsoDuration } from './durations.js';
import { CHANNEL_KEYWORDS, exclusiveGroupOf } from './imta-keywords.js';
import type { Channel, CopyMode, Diagnostic, ImtaConfig, MxMode, RewriteRule, SaslMode, TlsMode } from './types.js';

interface LogicalLine {
  text: string;
  file: string;
  line: number;
}

/** A blank line (where it is, for the diagnostics that name it). */
interface BlankLine {
  blank: true;
  file: string;
  line: number;
}

interface ImtaParseOptions {
  /** RETURN_UNITS=1 in option.dat: plain `notices` numbers are hours, not days. */
  noticesInHours?: boolean;
}

const MAX_INCLUDE_DEPTH = 3;
const DAY_MS = 86400e3;
/** Messaging Server's default for disconnectbadauthlimit: failed AUTH commands in one session. */
export const DEFAULT_BAD_AUTH_LIMIT = 3;
const CHANNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function parseImtaCnf(file: string, diagnostics: Diagnostic[], opts: ImtaParseOptions = {}): ImtaConfig {
  const lines: Array<LogicalLine | BlankLine> = [];
  readLines(file, lines, diagnostics, 0, null);

  const rules: RewriteRule[] = [];
  let i = 0;
  for (; i < lines.length && !isBlank(lines[i]!); i++) {
    const l = lines[i] as LogicalLine;
    const m = /^(\S+)\s+(.+)$/.exec(l.text.trim());
    if (!m) {
      diagnostics.push(err(l, `rewrite rule "${l.text.trim()}" has no template (pattern and template are separated by white space; a blank line ends the rules)`));
      continue;
    }
    // Only the text of a `$?` error may contain spaces.
    const template = m[2]!;
    const space = /\s/.exec(template);
    if (space && !template.slice(0, space.index).includes('$?')) {
      diagnostics.push(err(l, `rewrite rule has text after its template: "${template.slice(space.index).trim()}" (neither pattern nor template may contain spaces)`));
      continue;
    }
    rules.push({ pattern: m[1]!, template, file: l.file, line: l.line });
  }

  const blocks: LogicalLine[][] = [];
  /** The blank line before each block (by the block's head). */
  const blankBefore = new Map<LogicalLine, BlankLine>();
  let lastBlank: BlankLine | null = null;
  for (; i < lines.length; i++) {
    const l = lines[i]!;
    if (isBlank(l)) {
      if (blocks.length === 0 || blocks[blocks.length - 1]!.length > 0) blocks.push([]);
      lastBlank = l;
      continue;
    }
    if (blocks.length === 0) blocks.push([]);
    const block = blocks[blocks.length - 1]!;
    if (block.length === 0 && lastBlank) blankBefore.set(l, lastBlank);
    block.push(l);
  }

  const channels: Channel[] = [];
  const channelByName = new Map<string, Channel>();
  const hostTable = new Map<string, string>();
  let defaults: Array<[string, string[]]> = [];
  for (const block of blocks.filter((b) => b.length > 0)) {
    const head = block[0]!;
    const tokens = tokenize(head.text);
    const name = tokens[0]!;
    const blank = blankBefore.get(head);
    if (blank && looksLikeRewriteRule(tokens)) {
      // A blank line among the rules: what follows it is read as channel blocks, and the
      // errors about those "channels" would not name the cause.
      diagnostics.push({
        file: blank.file,
        line: blank.line,
        severity: 'error',
        message: `blank line ends the rewrite rules; the lines after it are read as channel blocks, but line ${head.line} ("${head.text.trim()}") is a rewrite rule: remove the blank line (blank lines may only separate channel blocks)`,
      });
      continue;
    }
    const own = parseKeywords(tokens.slice(1), head, diagnostics);
    if (name.toLowerCase() === 'defaults') {
      defaults = own;
      continue;
    }
    if (!CHANNEL_NAME.test(name)) {
      diagnostics.push(err(head, `"${name}" is not a valid channel name (letters, digits, "_", "-", "." only)`));
      continue;
    }
    if (channelByName.has(name.toLowerCase())) {
      const first = channelByName.get(name.toLowerCase())!;
      diagnostics.push(err(head, `channel ${name} is defined twice (first at ${first.file}:${first.line})`));
      continue;
    }
    const hostLines = block.slice(1).map((l) => ({ l, tokens: l.text.trim().split(/\s+/) }));
    if (hostLines.length === 0) {
      diagnostics.push(err(head, `channel ${name} has no host line (its official host name or tag goes on the line after the keywords)`));
      continue;
    }
    for (const h of hostLines) if (h.tokens.length > 2) diagnostics.push(err(h.l, `host line has more than two names: "${h.l.text.trim()}"`));
    const hosts = hostLines.map((h) => h.tokens[0]!);
    const channel = resolveChannel(name, withDefaults(defaults, own), hostLines[0]!.tokens[1] ?? hosts[0]!, hosts, head, diagnostics, opts);
    channels.push(channel);
    channelByName.set(name.toLowerCase(), channel);
    for (const h of hostLines) {
      const key = h.tokens[0]!.toLowerCase();
      if (hostTable.has(key)) diagnostics.push({ ...err(h.l, `host ${h.tokens[0]} already belongs to channel ${hostTable.get(key)}; this line is ignored`), severity: 'warning' });
      else hostTable.set(key, channel.name);
    }
  }

  // Channels without `notices` take the local channel's (reference §3.4).
  const local = channelByName.get('l');
  for (const c of channels) if (c.noticesMs === null && local?.noticesMs) c.noticesMs = local.noticesMs;

  checkRules(rules, hostTable, diagnostics);
  return { rules, channels, channelByName, hostTable };
}

function isBlank(l: LogicalLine | BlankLine): l is BlankLine {
  return 'blank' in l;
}

/** A channel block's first line that is a rewrite rule instead: a pattern and a template (`$U…`, `…@host`). */
function looksLikeRewriteRule(tokens: string[]): boolean {
  return tokens.length === 2 && /[$@]/.test(tokens[1]!);
}

function err(l: LogicalLine, message: string): Diagnostic {
  return { file: l.file, line: l.line, severity: 'error', message };
}

function readLines(file: string, out: Array<LogicalLine | BlankLine>, diagnostics: Diagnostic[], depth: number, from: LogicalLine | null): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    diagnostics.push(from ? err(from, `cannot read included file ${file}: ${code}`) : { file, line: 0, severity: 'error', message: `cannot read file: ${code}` });
    return;
  }
  const physical = text.split(/\r?\n/);
  if (physical[physical.length - 1] === '') physical.pop();
  for (let i = 0; i < physical.length; i++) {
    const lineNo = i + 1;
    let line = physical[i]!;
    if (line.startsWith('!')) continue;
    while (line.endsWith('\\') && i + 1 < physical.length) {
      i++;
      if (physical[i]!.startsWith('!')) continue;
      line = line.slice(0, -1) + physical[i]!;
    }
    if (line.trim() === '') {
      out.push({ blank: true, file, line: lineNo });
      continue;
    }
    const here: LogicalLine = { text: line, file, line: lineNo };
    if (line.startsWith('<')) {
      const target = line.slice(1).trim();
      if (!target) diagnostics.push(err(here, 'include line names no file'));
      else if (depth >= MAX_INCLUDE_DEPTH) diagnostics.push(err(here, `includes nest deeper than ${MAX_INCLUDE_DEPTH} levels`));
      else readLines(isAbsolute(target) ? target : resolve(dirname(file), target), out, diagnostics, depth + 1, here);
      continue;
    }
    out.push(here);
  }
}

/** White-space separated words; a double-quoted string is one word (quotes kept). */
function tokenize(text: string): string[] {
  return text.trim().match(/"[^"]*"|\S+/g) ?? [];
}

function parseKeywords(tokens: string[], head: LogicalLine, diagnostics: Diagnostic[]): Array<[string, string[]]> {
  const out: Array<[string, string[]]> = [];
  for (let i = 0; i < tokens.length; i++) {
    const name = tokens[i]!.toLowerCase();
    const spec = CHANNEL_KEYWORDS.get(name);
    if (!spec) {
      diagnostics.push({ ...err(head, `unknown channel keyword "${tokens[i]}" (ignored)`), severity: 'warning' });
      continue;
    }
    const args: string[] = [];
    if (spec.kind === 'integer' || spec.kind === 'word') {
      const arg = tokens[i + 1];
      if (arg === undefined || CHANNEL_KEYWORDS.has(arg.toLowerCase()) && spec.kind === 'word') {
        diagnostics.push(err(head, `keyword ${name} needs ${spec.kind === 'integer' ? 'a number' : 'an argument'}`));
        continue;
      }
      i++;
      if (spec.kind === 'integer') {
        const v = /^\d+$/.test(arg) ? Number(arg) : NaN;
        if (!(v >= spec.min && v <= (spec.max ?? Number.MAX_SAFE_INTEGER))) {
          diagnostics.push(err(head, `keyword ${name} needs an integer${spec.max !== undefined ? ` from ${spec.min} to ${spec.max}` : ` ≥ ${spec.min}`}, found "${arg}"`));
          continue;
        }
      }
      args.push(arg);
    } else if (spec.kind === 'durations' || spec.kind === 'ages') {
      while (i + 1 < tokens.length && looksLikeAge(tokens[i + 1]!, spec.kind)) args.push(tokens[++i]!);
      if (args.length === 0) {
        diagnostics.push(err(head, `keyword ${name} needs ${spec.kind === 'durations' ? 'quoted ISO 8601 durations such as "PT30M"' : 'ages in days (or durations)'}`));
        continue;
      }
      if (args.length > spec.max) {
        diagnostics.push(err(head, `keyword ${name} takes at most ${spec.max} values, found ${args.length}`));
        continue;
      }
      const bad = args.find((a) => ageMs(a, false) === null);
      if (bad) {
        diagnostics.push(err(head, `keyword ${name}: "${bad}" is not an ISO 8601 duration (such as "PT30M", "P1D")`));
        continue;
      }
    }
    out.push([name, args]);
  }
  reportConflicts(out, head, diagnostics);
  return out;
}

/** Two different keywords of one exclusive group in one block (dmarchold … dmarcaccept): an error naming both. */
function reportConflicts(keywords: Array<[string, string[]]>, head: LogicalLine, diagnostics: Diagnostic[]): void {
  const seen = new Map<readonly string[], string>();
  for (const [name] of keywords) {
    const group = exclusiveGroupOf(name);
    if (!group) continue;
    const first = seen.get(group);
    if (first === undefined) seen.set(group, name);
    else if (first !== name) diagnostics.push(err(head, `keywords ${first} and ${name} conflict: a channel takes one of ${group.join(', ')}`));
  }
}

/** The defaults block's keywords, then the block's own; an own keyword of an exclusive group replaces the defaults' of that group. */
function withDefaults(defaults: Array<[string, string[]]>, own: Array<[string, string[]]>): Array<[string, string[]]> {
  const ownGroups = new Set<readonly string[] | null>(own.map(([k]) => exclusiveGroupOf(k)));
  return [...defaults.filter(([k]) => {
    const group = exclusiveGroupOf(k);
    return group === null || !ownGroups.has(group);
  }), ...own];
}

function looksLikeAge(token: string, kind: 'durations' | 'ages'): boolean {
  if (token.startsWith('"')) return true;
  if (/^p/i.test(token) && !CHANNEL_KEYWORDS.has(token.toLowerCase())) return true;
  return kind === 'ages' && /^\d+(\.\d+)?$/.test(token);
}

/** A duration, or (for notices) a plain number of days or hours. */
function ageMs(token: string, inHours: boolean): number | null {
  if (/^\d+(\.\d+)?$/.test(token)) return Number(token) * (inHours ? 3600e3 : DAY_MS);
  const ms = parseIsoDuration(token);
  return ms === null || ms <= 0 ? null : ms;
}

function last<T extends string>(ordered: Array<[string, string[]]>, names: readonly T[], fallback: T): T {
  let found: T = fallback;
  for (const [k] of ordered) if ((names as readonly string[]).includes(k)) found = k as T;
  return found;
}

function resolveChannel(
  name: string,
  ordered: Array<[string, string[]]>,
  officialHost: string,
  hosts: string[],
  head: LogicalLine,
  diagnostics: Diagnostic[],
  opts: ImtaParseOptions,
): Channel {
  const keywords: Record<string, string[]> = {};
  for (const [k, args] of ordered) keywords[k] = args;
  const int = (k: string, fallback: number) => (keywords[k] ? Number(keywords[k][0]) : fallback);
  const word = (k: string) => keywords[k]?.[0] ?? null;
  const ages = (list: string[] | undefined) => {
    if (!list) return null;
    const ms = list.map((a) => ageMs(a.replace(/^"(.*)"$/, '$1'), opts.noticesInHours === true)!);
    return ms;
  };

  const smtpKw = last(ordered, ['smtp', 'smtp_cr', 'smtp_crlf', 'smtp_lf', 'smtp_crorlf', 'nosmtp', 'none'] as const, 'none');
  const tls = (side: 'client' | 'server'): TlsMode => {
    let mode: TlsMode = 'notls';
    for (const [k] of ordered) {
      if (k === 'notls') mode = 'notls';
      else if (k === 'maytls' || k === `maytls${side}`) mode = 'maytls';
      else if (k === 'musttls' || k === `musttls${side}`) mode = 'musttls';
    }
    return mode;
  };
  const backoffMs = ages(keywords.backoff ?? keywords.normalbackoff);
  const noticesMs = ages(keywords.notices ?? keywords.normalnotices);
  if (noticesMs?.some((v, idx) => idx > 0 && v <= noticesMs[idx - 1]!)) {
    diagnostics.push(err(head, `channel ${name}: notices ages must increase`));
  }
  const pool = word('pool');
  const daemon = word('daemon');
  const sasl = (side: 'server' | 'client'): SaslMode => {
    // PMDF's maysasl/mustsasl are both sides at once, nosasl neither.
    let mode: SaslMode = 'none';
    for (const [k] of ordered) {
      if (k === 'nosasl' || k === `nosasl${side}`) mode = 'none';
      else if (k === 'maysasl' || k === `maysasl${side}`) mode = 'may';
      else if (k === 'mustsasl' || k === `mustsasl${side}`) mode = 'must';
    }
    return mode;
  };
  return {
    name,
    keywords,
    officialHost,
    hosts,
    file: head.file,
    line: head.line,
    smtp: smtpKw !== 'none' && smtpKw !== 'nosmtp',
    lmtp: 'lmtp' in keywords,
    mx: last<MxMode>(ordered, ['mx', 'nomx', 'randommx', 'nonrandommx', 'defaultmx'], 'defaultmx'),
    daemon: daemon ? daemon.split(',').map((h) => h.trim()).filter(Boolean) : null,
    port: keywords.port ? int('port', 25) : null,
    copies: last<CopyMode>(ordered, ['single', 'single_sys', 'multiple'], 'multiple'),
    addrsPerFile: keywords.addrsperfile && int('addrsperfile', 0) > 0 ? int('addrsperfile', 0) : null,
    subdirs: int('subdirs', 0),
    maxJobs: int('maxjobs', 100),
    pool,
    threadDepth: int('threaddepth', 10),
    filesPerJob: int('filesperjob', 0),
    addrsPerJob: int('addrsperjob', 0),
    backoffMs,
    noticesMs,
    immediate: last(ordered, ['immediate', 'periodic'] as const, 'immediate') === 'immediate',
    tlsClient: tls('client'),
    tlsServer: tls('server'),
    pipelining: last(ordered, ['pipelining', 'nopipelining'] as const, 'pipelining') === 'pipelining',
    masterDebug: last(ordered, ['master_debug', 'nomaster_debug'] as const, 'nomaster_debug') === 'master_debug',
    slaveDebug: last(ordered, ['slave_debug', 'noslave_debug'] as const, 'noslave_debug') === 'slave_debug',
    senderRewrite: word('envelopesender'),
    rcptPerTransaction: int('rcptpertransaction', 100),
    maxClientConnections: int('maxclientthreads', 1000),
    dkimSign: last(ordered, ['dkimsign', 'nodkimsign'] as const, 'nodkimsign') === 'dkimsign',
    verp: last(ordered, ['verp', 'noverp'] as const, 'noverp') === 'verp',
    srs: {
      source: last(ordered, ['sourcesrs', 'nosourcesrs'] as const, 'nosourcesrs') === 'sourcesrs',
      destination: last(ordered, ['destinationsrs', 'nodestinationsrs'] as const, 'nodestinationsrs') === 'destinationsrs',
      address: last(ordered, ['addresssrs', 'noaddresssrs'] as const, 'noaddresssrs') === 'addresssrs',
    },
    sasl: {
      server: sasl('server'),
      client: sasl('client'),
      switchChannel: last(ordered, ['saslswitchchannel', 'nosaslswitchchannel'] as const, 'nosaslswitchchannel') === 'saslswitchchannel' ? word('saslswitchchannel') : null,
      cleartext: last(ordered, ['saslcleartext', 'nosaslcleartext'] as const, 'nosaslcleartext') === 'saslcleartext',
      senderLoginMatch: last(ordered, ['senderloginmatch', 'nosenderloginmatch'] as const, 'senderloginmatch') === 'senderloginmatch',
      badAuthLimit: int('disconnectbadauthlimit', DEFAULT_BAD_AUTH_LIMIT),
    },
  };
}

/** Every template must compile, and one that routes to a fixed host must name a channel's host. */
function checkRules(rules: RewriteRule[], hostTable: Map<string, string>, diagnostics: Diagnostic[]): void {
  for (const rule of rules) {
    let compiled;
    try {
      compiled = compileTemplate(rule.template);
    } catch (e) {
      diagnostics.push({ file: rule.file, line: rule.line, severity: 'error', message: `bad template for ${rule.pattern}: ${(e as Error).message}` });
      continue;
    }
    if (compiled.form === 'meta' || compiled.form === 'error-only') continue;
    const routing = compiled.parts[compiled.parts.length - 1] ?? [];
    if (routing.length === 0 || !routing.every((p) => p.kind === 'text')) continue;
    const host = routing.map((p) => (p.kind === 'text' ? p.text : '')).join('');
    if (!hostTable.has(host.toLowerCase())) {
      diagnostics.push({ file: rule.file, line: rule.line, severity: 'error', message: `rule ${rule.pattern} routes to "${host}", which is no channel's host (add it under a channel or fix the template)` });
    }
  }
}
