// How `imsimta test -rewrite` shows a result: a Messaging-Server-like text block, or one
// JSON object. Pure formatting; the command does the I/O.
import type { Channel } from '../config/types.js';
import type { RewriteResult } from './types.js';

export interface RewriteReport {
  to: RewriteResult;
  /** The channel `to` routes to, for its keywords and official host. */
  channel: Channel | null;
  /** The envelope From rewritten towards that channel, when one was given. */
  from: RewriteResult | null;
}

/** Channel keywords as Messaging Server prints channel flags: names in capitals, arguments as written. */
function channelFlags(channel: Channel): string[] {
  return Object.entries(channel.keywords).map(([name, args]) => [name.toUpperCase(), ...args].join(' '));
}

const FLAGS_PER_LINE = 6;

export function formatRewriteText(report: RewriteReport): string {
  const { to, channel, from } = report;
  const lines: string[] = [`address = ${to.address}`];
  for (const step of to.steps) {
    const rule = step.rule ? ` [${step.rule.file}:${step.rule.line} ${step.rule.pattern} ${step.rule.template}]` : '';
    lines.push(`    probe ${step.probe || '(none)'}${rule}: ${step.outcome}`);
  }
  lines.push(`    channel = ${to.channel ?? '(none)'}`);
  if (to.error !== null) lines.push(`    error = ${to.error}${to.temporary ? ' (temporary)' : ''}`);
  if (channel) {
    const flags = channelFlags(channel);
    for (let i = 0; i < flags.length; i += FLAGS_PER_LINE) {
      lines.push(`    channel flags #${i / FLAGS_PER_LINE + 1} = ${flags.slice(i, i + FLAGS_PER_LINE).join(' ')}`);
    }
    lines.push(`    channel official host = ${channel.officialHost}`);
  }
  if (to.rewritten !== null) lines.push(`    envelope To: ${to.rewritten}${to.route ? ` (route (${to.route}))` : ''}`);
  if (from) {
    if (from.error !== null) lines.push(`    envelope From: ${from.address} (error: ${from.error})`);
    else lines.push(`    envelope From: ${from.rewritten === '' ? '<>' : from.rewritten} (backward channel = ${from.channel ?? '(none)'})`);
  }
  return lines.join('\n') + '\n';
}

/** The `--json` object: one per address, on one line. */
export function rewriteJson(report: RewriteReport): Record<string, unknown> {
  const { to, channel, from } = report;
  return {
    address: to.address,
    channel: to.channel,
    rewritten: to.rewritten,
    route: to.route,
    error: to.error,
    ...(to.temporary ? { temporary: true } : {}),
    keywords: channel ? channel.keywords : null,
    official_host: channel ? channel.officialHost : null,
    steps: to.steps,
    ...(from ? { from: { address: from.address, channel: from.channel, rewritten: from.rewritten, error: from.error } } : {}),
  };
}
