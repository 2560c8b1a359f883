// Local recipients of the `l` channel (pure): subaddress stripping, etc/aliases expansion and the
// decision of what each final target is. Messaging Server/sendmail semantics: an alias maps a
// local part to users, other aliases, /dev/null or remote addresses. localUser and isSafeUser
// live in directory/local-part.ts now.
import { isSafeUser, localUser } from '../directory/local-part.js';

export { isSafeUser, localUser };

export type LocalTarget =
  | { kind: 'mailbox'; user: string }
  | { kind: 'discard' } // /dev/null
  | { kind: 'unsupported'; target: string; why: string } // remote address, |pipe, :include:, /file
  | { kind: 'unknown'; user: string };

export interface Expansion {
  targets: LocalTarget[];
  /** An alias chain deeper than the limit (a loop). */
  loop: boolean;
}

export interface ExpandOptions {
  aliases: Map<string, string[]>;
  /** Whether mailbox/<user>/ exists. */
  mailboxExists(user: string): boolean;
  /** Domains that are this host (an alias target user@one-of-these is local). */
  localDomains: string[];
  maxDepth?: number;
}

export function expandLocal(localPart: string, opts: ExpandOptions): Expansion {
  const maxDepth = opts.maxDepth ?? 10;
  const localDomains = new Set(opts.localDomains.map((d) => d.toLowerCase()));
  const targets: LocalTarget[] = [];
  const seen = new Set<string>();
  let loop = false;

  const visit = (name: string, depth: number) => {
    const { full, base } = localUser(name);
    // user+tag: the alias for the full local part wins, else the base user's (as Postfix does).
    const key = opts.aliases.has(full) ? full : base;
    if (seen.has(key)) return; // each user once per recipient, and alias cycles end here
    seen.add(key);
    const alias = opts.aliases.get(key);
    if (!alias || depth > maxDepth) {
      if (depth > maxDepth) loop = true;
      if (key === 'postmaster' || opts.mailboxExists(key)) targets.push({ kind: 'mailbox', user: key });
      else targets.push({ kind: 'unknown', user: key });
      return;
    }
    for (const raw of alias) {
      const t = raw.trim();
      if (!t) continue;
      if (t === '/dev/null') targets.push({ kind: 'discard' });
      else if (t.startsWith('|') || t.startsWith('/') || t.toLowerCase().startsWith(':include:')) {
        targets.push({ kind: 'unsupported', target: t, why: 'pipes, files and :include: are not supported by the l channel' });
      } else if (t.includes('@')) {
        const at = t.lastIndexOf('@');
        const domain = t.slice(at + 1).toLowerCase();
        if (localDomains.has(domain)) visitTarget(t.slice(0, at), depth + 1, key);
        else targets.push({ kind: 'unsupported', target: t, why: 'forwarding to a remote address is not supported by the l channel' });
      } else visitTarget(t, depth + 1, key);
    }
  };
  // `root: root` style self-references deliver to the mailbox instead of recursing.
  const visitTarget = (name: string, depth: number, from: string) => {
    const { base } = localUser(name);
    if (base === from) {
      if (!targets.some((x) => x.kind === 'mailbox' && x.user === base)) targets.push({ kind: 'mailbox', user: base });
      return;
    }
    visit(name, depth);
  };
  visit(localPart, 0);
  return { targets, loop };
}
