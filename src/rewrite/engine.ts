// The rewrite engine: compiles the rules of imta.cnf once, then maps each address to a
// destination channel and a rewritten address (Messaging Server's rewrite-rule semantics).
// Pure: no I/O, no global state; everything it needs is built in compileRewriter.
import type { Channel, ImtaConfig, RewriteRule } from '../config/types.js';
import { formatAddress, parseAddress, type ParsedAddress } from '../common/address.js';
import { asksHostedDomains, compileTemplate, type CompiledTemplate, type Control, type HostLocation } from '../config/rewrite-template.js';
import { addSourceRoute, composeAddress, extractHost, type ExtractedHost } from './address.js';
import { hostKey, hostProbes, type Probe } from './probes.js';
import { expandParts } from './template.js';
import type { HostedDomains, RewriteContext, RewriteResult, RewriteStep, Rewriter } from './types.js';

/** Meta rules (`U%D`) may restart the rewrite this many times before it counts as a loop. */
const MAX_REWRITE_PASSES = 10;

/** Channels that count as internal reprocessing for `$1M`/`$1N`. */
const INTERNAL_CHANNELS = new Set(['reprocess', 'process']);

interface CompiledRule {
  rule: RewriteRule;
  template: CompiledTemplate | null;
  problem: string | null; // why the template does not compile
}

interface Compiled {
  starRules: CompiledRule[]; // `$*`
  rulesByPattern: Map<string, CompiledRule[]>; // lower-case pattern → rules in file order
  hostTable: Map<string, string>;
  channels: Map<string, Channel>;
  localHost: string | null; // official host of the `l` channel
  hosted: HostedDomains | null; // for `$V` and `$Z`
}

export interface RewriterOptions {
  /** The directory's hosted domains for `$V` and `$Z`; without them such rules cannot decide (a temporary error). */
  hostedDomains?: HostedDomains;
}

/** Whether any rule of the configuration asks the hosted domains (`$V`, `$Z`): only then need the directory keep them. */
export function rulesAskHostedDomains(imta: ImtaConfig): boolean {
  return imta.rules.some((rule) => {
    try {
      return asksHostedDomains(compileTemplate(rule.template));
    } catch {
      return false;
    }
  });
}

/** Compiles the rules and lookup tables of one configuration into a rewriter. */
export function compileRewriter(imta: ImtaConfig, opts: RewriterOptions = {}): Rewriter {
  const rulesByPattern = new Map<string, CompiledRule[]>();
  for (const rule of imta.rules) {
    let template: CompiledTemplate | null = null;
    let problem: string | null = null;
    try {
      template = compileTemplate(rule.template);
    } catch (err) {
      problem = (err as Error).message;
    }
    const key = rule.pattern.toLowerCase();
    const list = rulesByPattern.get(key) ?? [];
    list.push({ rule, template, problem });
    rulesByPattern.set(key, list);
  }
  const hostTable = new Map<string, string>();
  for (const [host, channel] of imta.hostTable) hostTable.set(host.toLowerCase(), channel);
  const channels = new Map<string, Channel>();
  for (const [name, channel] of imta.channelByName) channels.set(name.toLowerCase(), channel);
  const compiled: Compiled = {
    starRules: rulesByPattern.get('$*') ?? [],
    rulesByPattern,
    hostTable,
    channels,
    localHost: channels.get('l')?.officialHost ?? null,
    hosted: opts.hostedDomains ?? null,
  };
  return { rewrite: (address, ctx) => rewrite(compiled, address, ctx) };
}

/** How one rewriting pass ended. */
type PassOutcome =
  | { kind: 'done'; channel: string; rewritten: string; route: string | null }
  | { kind: 'error'; error: string; temporary?: true }
  | { kind: 'restart'; address: ParsedAddress }
  | { kind: 'next' }; // the rule did not apply; keep looking

function rewrite(c: Compiled, address: string, ctx: RewriteContext): RewriteResult {
  const steps: RewriteStep[] = [];
  const result = (fields: Partial<RewriteResult>): RewriteResult => ({ address, channel: null, rewritten: null, route: null, error: null, steps, ...fields });
  const trimmed = address.trim();
  if (trimmed === '' || trimmed === '<>') {
    if (ctx.direction === 'from') {
      steps.push({ probe: '', rule: null, outcome: 'null sender: nothing to rewrite' });
      return result({ rewritten: '' });
    }
    return result({ error: 'null address is not a valid recipient' });
  }
  const parsed = parseAddress(trimmed);
  if (!parsed) return result({ error: `syntax error in address: ${trimmed}` });
  if (parsed.route.length === 0 && parsed.domain === null && parsed.localPart.toLowerCase() === 'postmaster') {
    // RFC 5321 §4.5.1: <postmaster> without a domain is always the local postmaster.
    if (!c.channels.has('l') || !c.localHost) return result({ error: 'postmaster: there is no local channel l' });
    steps.push({ probe: 'postmaster', rule: null, outcome: 'postmaster without domain: local channel l' });
    return result({ channel: 'l', rewritten: `${parsed.localPart}@${c.localHost}` });
  }
  const source = c.channels.get(ctx.sourceChannel.toLowerCase());
  const keywords = source?.keywords ?? {};
  const hostOptions = {
    bangOverPercent: 'bangoverpercent' in keywords && !('nobangoverpercent' in keywords),
    percentOnly: 'percentonly' in keywords,
  };
  let current = parsed;
  for (let pass = 0; pass < MAX_REWRITE_PASSES; pass++) {
    const outcome = rewritePass(c, current, ctx, hostOptions, steps);
    if (outcome.kind === 'restart') {
      current = outcome.address;
      continue;
    }
    if (outcome.kind === 'done') return result({ channel: outcome.channel, rewritten: outcome.rewritten, route: outcome.route });
    if (outcome.kind === 'error') return result(outcome.temporary ? { error: outcome.error, temporary: true } : { error: outcome.error });
    break;
  }
  steps.push({ probe: formatAddress(current), rule: null, outcome: `stopped after ${MAX_REWRITE_PASSES} rewrites` });
  return result({ error: 'rewrite loop' });
}

/** One pass: extract the host, then try the probes in order. */
function rewritePass(c: Compiled, addr: ParsedAddress, ctx: RewriteContext, hostOptions: { bangOverPercent: boolean; percentOnly: boolean }, steps: RewriteStep[]): PassOutcome {
  const text = formatAddress(addr);
  const extracted = extractHost(addr, hostOptions);
  if (extracted) {
    const outcome = lookupHost(c, extracted, text, ctx, steps);
    if (outcome.kind !== 'next') return outcome;
    // A `%` or `!` address nothing matched is a local part at the local host (A%B@localhost).
    if ((extracted.location === 'P' || extracted.location === 'X') && c.localHost) {
      steps.push({ probe: c.localHost, rule: null, outcome: `no rule for ${extracted.host}: treated as ${addr.localPart}@${c.localHost}` });
      const local = lookupHost(c, { host: c.localHost, location: 'A', user: addr.localPart }, `${addr.localPart}@${c.localHost}`, ctx, steps);
      if (local.kind !== 'next') return local;
    }
    return { kind: 'error', error: `illegal host/domain: ${extracted.host}` };
  }
  // A bare local part is at the local host.
  if (!c.localHost) return { kind: 'error', error: `no domain in ${text} and no local channel l` };
  const local = lookupHost(c, { host: c.localHost, location: 'A', user: addr.localPart }, `${addr.localPart}@${c.localHost}`, ctx, steps);
  return local.kind === 'next' ? { kind: 'error', error: `illegal host/domain: ${c.localHost}` } : local;
}

/** `$*` first, then each probe's rules, the channel table after the exact name, then `$%`/`$!`. */
function lookupHost(c: Compiled, ex: ExtractedHost, address: string, ctx: RewriteContext, steps: RewriteStep[]): PassOutcome {
  const whole: Omit<Probe, 'pattern' | 'kind'> = {
    matched: ex.host,
    unmatched: '',
    literalRest: '',
    wildLabels: [],
    fixedLabels: ex.host.split('.'),
    channelTable: false,
  };
  if (c.starRules.length) {
    const outcome = tryRules(c, c.starRules, { ...whole, pattern: '$*', kind: 'exact' }, ex, address, ctx, steps);
    if (outcome.kind !== 'next') return outcome;
  }
  for (const probe of hostProbes(ex.host)) {
    const rules = c.rulesByPattern.get(probe.pattern);
    if (rules) {
      const outcome = tryRules(c, rules, probe, ex, address, ctx, steps);
      if (outcome.kind !== 'next') return outcome;
    } else {
      steps.push({ probe: probe.pattern, rule: null, outcome: 'no rule' });
    }
    if (probe.channelTable) {
      const channel = c.hostTable.get(hostKey(ex.host));
      if (channel) {
        const rewritten = composeAddress(ex.user, ex.host, ex.location);
        steps.push({ probe: probe.pattern, rule: null, outcome: `host of channel ${channel}: ${rewritten}` });
        return { kind: 'done', channel, rewritten, route: null };
      }
    }
  }
  const special = ex.location === 'P' ? '$%' : ex.location === 'X' ? '$!' : null;
  const specialRules = special ? c.rulesByPattern.get(special) : undefined;
  if (special && specialRules) {
    const outcome = tryRules(c, specialRules, { ...whole, pattern: special, kind: 'exact' }, ex, address, ctx, steps);
    if (outcome.kind !== 'next') return outcome;
  }
  return { kind: 'next' };
}

/** Rules with the same pattern are tried in file order; the first whose controls hold wins. */
function tryRules(c: Compiled, rules: CompiledRule[], probe: Probe, ex: ExtractedHost, address: string, ctx: RewriteContext, steps: RewriteStep[]): PassOutcome {
  for (const cr of rules) {
    const outcome = applyRule(c, cr, probe, ex, address, ctx);
    steps.push({ probe: probe.pattern, rule: { ...cr.rule }, outcome: outcome.step });
    if (outcome.result.kind !== 'next') return outcome.result;
  }
  return { kind: 'next' };
}

function applyRule(c: Compiled, cr: CompiledRule, probe: Probe, ex: ExtractedHost, address: string, ctx: RewriteContext): { result: PassOutcome; step: string } {
  const next = (why: string) => ({ result: { kind: 'next' } as PassOutcome, step: why });
  const t = cr.template;
  if (!t) return next(`skipped: invalid template (${cr.problem})`);
  const failed = failedControl(c, t.controls, ex.location, ctx) ?? failedHostedControl(c, t.controls, ex.host);
  if (failed?.undecided) return { result: { kind: 'error', error: failed.undecided, temporary: true }, step: `temporary error: ${failed.undecided}` };
  if (failed) return next(`failed: ${failed.why}`);
  const errorText = [...t.controls].reverse().find((k): k is Extract<Control, { kind: 'error' }> => k.kind === 'error')?.text ?? null;
  if (t.form === 'error-only') return { result: { kind: 'error', error: errorText || 'address rejected by rewrite rule' }, step: `error: ${errorText}` };
  const parts = expandParts(t, {
    user: ex.user,
    matched: probe.matched,
    unmatched: probe.unmatched,
    literalRest: probe.literalRest,
    wildLabels: probe.wildLabels,
    fixedLabels: probe.fixedLabels,
    address,
    mailhost: c.localHost ?? '',
  });
  if (!parts) return next('failed: a single-field substitution names a label that does not exist');
  if (parts.some((p) => p === '')) return next('failed: a part of the result is empty');
  const [user, second, third, fourth] = parts as [string, string, string?, string?];
  if (t.form === 'meta') {
    const rewritten = composeAddress(user, second, ex.location);
    const restartAt: ParsedAddress | null = ex.location === 'S' ? parseAddress(rewritten) : { route: [], localPart: user, domain: second };
    if (!restartAt) return { result: { kind: 'error', error: `rewrite produced an invalid address: ${rewritten}` }, step: `error: invalid result ${rewritten}` };
    return { result: { kind: 'restart', address: restartAt }, step: `rewritten to ${rewritten}; starting over` };
  }
  let domain: string;
  let tag: string;
  let route: string | null = null;
  switch (t.form) {
    case 'user-at-channel':
      domain = second;
      tag = second;
      break;
    case 'user-percent-domain-at-channel':
      domain = second;
      tag = third!;
      break;
    case 'route-via-channel':
      domain = second;
      route = third!;
      tag = third!;
      break;
    case 'route':
      domain = second;
      route = third!;
      tag = fourth!;
      break;
  }
  let rewritten = composeAddress(user, domain, ex.location);
  if (route) rewritten = addSourceRoute(route, rewritten);
  const channel = c.hostTable.get(hostKey(tag));
  if (!channel) {
    return { result: { kind: 'error', error: errorText || `illegal host/domain: ${ex.host}` }, step: `rewritten to ${rewritten}, but no channel has the host ${tag}` };
  }
  return { result: { kind: 'done', channel, rewritten, route }, step: `rewritten to ${rewritten} via ${tag}: channel ${channel}` };
}

const LOCATION_NAMES: Record<HostLocation, string> = {
  S: 'in a source route',
  A: 'right of @',
  P: 'right of %',
  X: 'left of !',
};

/** Why a rule does not apply; `undecided` when it cannot tell yet (the rewrite then ends in a temporary error). */
interface FailedControl {
  why: string;
  undecided?: string;
}

/**
 * `$V` (the host must be a hosted domain) and `$Z` (it must not be), asked after every other
 * control so that a rule that does not apply anyway never waits on the directory. A domain
 * literal is never hosted.
 */
function failedHostedControl(c: Compiled, controls: Control[], host: string): FailedControl | null {
  const asks = controls.filter((k) => k.kind === 'hosted' || k.kind === 'not-hosted');
  if (asks.length === 0) return null;
  const domain = host.toLowerCase().replace(/\.$/, '');
  const hosted = domain.startsWith('[') ? false : c.hosted ? c.hosted.isHostedDomain(domain) : null;
  if (hosted === null) {
    const why = c.hosted ? 'the directory has not said yet which domains it hosts' : 'no directory answers which domains are hosted';
    return { why, undecided: `hosted domains unknown ($V/$Z for ${domain}): ${why}` };
  }
  for (const k of asks) {
    if (k.kind === 'hosted' && !hosted) return { why: `$V: ${domain} is not a hosted domain` };
    if (k.kind === 'not-hosted' && hosted) return { why: `$Z: ${domain} is a hosted domain` };
  }
  return null;
}

/** The first control sequence that does not hold, or null when the rule applies (`$V`/`$Z` aside). */
function failedControl(c: Compiled, controls: Control[], location: HostLocation, ctx: RewriteContext): FailedControl | null {
  const why = failedControlText(c, controls, location, ctx);
  return why === null ? null : { why };
}

function failedControlText(c: Compiled, controls: Control[], location: HostLocation, ctx: RewriteContext): string | null {
  if (controls.length === 0) return null;
  const envelope = ctx.envelope !== false;
  const source = ctx.sourceChannel.toLowerCase();
  const dest = ctx.destinationChannel?.toLowerCase();
  // $Q/$C do not apply while the envelope To itself is rewritten, nor towards a `norules` channel.
  const destChecks = dest !== undefined && !(ctx.direction === 'to' && envelope) && !('norules' in (c.channels.get(dest)?.keywords ?? {}));
  const locations = new Set<HostLocation>();
  const kinds = new Set<string>();
  const isSource: string[] = [];
  const isDest: string[] = [];
  for (const k of controls) {
    switch (k.kind) {
      case 'location':
        locations.add(k.where);
        break;
      case 'is-source':
        isSource.push(k.channel);
        break;
      case 'not-source':
        if (k.channel === source) return `$N${k.channel}: the rewriting channel is ${source}`;
        break;
      case 'is-dest':
        if (destChecks) isDest.push(k.channel);
        break;
      case 'not-dest':
        if (destChecks && k.channel === dest) return `$C${k.channel}: the destination channel is ${dest}`;
        break;
      case 'error':
      case 'hosted':
      case 'not-hosted':
        break;
      default:
        kinds.add(k.kind);
    }
  }
  if (locations.size && !locations.has(location)) return `$${[...locations].join('$')}: the host was found ${LOCATION_NAMES[location]}`;
  if ((kinds.has('envelope') || kinds.has('header')) && !kinds.has(envelope ? 'envelope' : 'header')) {
    return envelope ? '$B: this is an envelope address' : '$E: this is a header address';
  }
  if ((kinds.has('forward') || kinds.has('backward')) && !kinds.has(ctx.direction === 'to' ? 'forward' : 'backward')) {
    return ctx.direction === 'to' ? '$R: this is a forward (To) address' : '$F: this is a backward (From) address';
  }
  if (kinds.has('internal') && !INTERNAL_CHANNELS.has(source)) return `$1M: ${source} is not a reprocessing channel`;
  if (kinds.has('not-internal') && INTERNAL_CHANNELS.has(source)) return `$1N: ${source} is a reprocessing channel`;
  if (isSource.length && !isSource.includes(source)) return `$M${isSource.join('$M')}: the rewriting channel is ${source}`;
  if (isDest.length && !isDest.includes(dest!)) return `$Q${isDest.join('$Q')}: the destination channel is ${dest}`;
  return null;
}
