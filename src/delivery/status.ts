// Status texts of recipient outcomes: always `NNN X.Y.Z text` on one line, so that mail.log,
// DSNs (Status, Diagnostic-Code) and operators read the same shape whether the text is a remote
// reply or a local decision.
import type { Target } from './mx.js';

/** `mx1.example.com[192.0.2.1]` (with `:port` when not 25), as Postfix writes hosts. */
export function describeHost(target: Pick<Target, 'host' | 'ip' | 'port'>): string {
  const port = target.port === 25 ? '' : `:${target.port}`;
  return `${target.host}[${target.ip}]${port}`;
}

/**
 * The host name in a describeHost text (`mx1.example.com[192.0.2.1]:2526` → `mx1.example.com`),
 * for a DSN's Remote-MTA; an address literal (`[192.0.2.1][192.0.2.1]`) gives the bare address.
 */
export function hostNameOf(described: string): string {
  const text = described.trim();
  const name = text.replace(/\s*\[[^\]]*\](?::\d+)?$/, '');
  const literal = /^\[([^\]]*)\]$/.exec(name);
  if (literal) return literal[1]!;
  if (name) return name;
  return /^\[([^\]]*)\]/.exec(text)?.[1] ?? text;
}

/** A (possibly multi-line) SMTP reply as one line `NNN X.Y.Z text`; an enhanced code is added when missing. */
export function normalizeReply(response: string): string {
  const lines = response
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  if (lines.length === 0) return '451 4.0.0 empty reply';
  const first = /^(\d{3})(?:[ -](.*))?$/.exec(lines[0]!);
  if (!first) return `451 4.0.0 ${lines.join(' ')}`;
  const code = first[1]!;
  const texts = lines.map((l) => l.replace(/^\d{3}[ -]?/, ''));
  const enhanced = /^([245]\.\d{1,3}\.\d{1,3})\s*/.exec(texts[0]!);
  const rest = texts.map((t) => t.replace(/^[245]\.\d{1,3}\.\d{1,3}\s*/, '')).join(' ').trim();
  const enh = enhanced ? enhanced[1]! : `${code[0]}.0.0`;
  return `${code} ${enh}${rest ? ` ${rest}` : ''}`;
}

/** The enhanced status code of a normalised status, e.g. `5.1.1`. */
export function enhancedCode(status: string): string | null {
  const m = /^\d{3} ([245]\.\d{1,3}\.\d{1,3})/.exec(status);
  return m ? m[1]! : null;
}
