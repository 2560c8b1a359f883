// Local recipients of the `l` channel (pure): which user a local part names (one canonical
// reading, RFC 5321 quoting resolved, case folded, `+tag` subaddress), etc/aliases expansion,
// the decision of what each final target is, and the verdict for the recipient as a whole.
// Both sides use it: the SMTP server's RCPT check (directory/local-users.ts) and the local
// channel's delivery (channels/local.ts), so a recipient RCPT accepted is never unknown to
// delivery (which would send a notice to a sender who may be forged: backscatter).
// Messaging Server/sendmail semantics: an alias maps a local part to users, other aliases,
// /dev/null or remote addresses.
import { parseAddress, unquoteLocalPart } from '../rewrite/index.js';

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
  /** The directory under mailbox/ of a user (lower case), whatever its case; null when there is none. */
  mailboxName(user: string): string | null;
  /** Domains that are this host (an alias target user@one-of-these is local). */
  localDomains: string[];
  maxDepth?: number;
}

/** The user a local part names, lower case: `full`, and `base` without a `+tag` subaddress. */
export function localUser(localPart: string): { full: string; base: string } {
  const full = unquoteLocalPart(localPart).toLowerCase();
  const plus = full.indexOf('+');
  return { full, base: plus > 0 ? full.slice(0, plus) : full };
}

/** Domains that are this host for the local channel: an alias target user@one-of-these is local. */
export function localDomainsOf(channel: { hosts: string[]; officialHost: string } | undefined, localHost: string): string[] {
  return ['localhost', localHost, ...(channel?.hosts ?? []), channel?.officialHost ?? ''].filter(Boolean);
}

/** A user name that can be a directory name under mailbox/. */
export function isSafeUser(user: string): boolean {
  return user.length > 0 && user.length <= 64 && !user.includes('/') && user !== '.' && user !== '..' && !user.includes('\0');
}

export function expandLocal(localPart: string, opts: ExpandOptions): Expansion {
  const maxDepth = opts.maxDepth ?? 10;
  const localDomains = new Set(opts.localDomains.map((d) => d.toLowerCase()));
  const targets: LocalTarget[] = [];
  const seen = new Set<string>();
  let loop = false;
  const mailbox = (user: string) => (isSafeUser(user) ? opts.mailboxName(user) : null);

  const visit = (name: string, depth: number) => {
    const { full, base } = localUser(name);
    // user+tag: the alias (or mailbox) for the full local part wins, else the base user's (as Postfix does).
    const key = opts.aliases.has(full) || (full !== base && mailbox(full) !== null) ? full : base;
    if (seen.has(key)) return; // each user once per recipient, and alias cycles end here
    seen.add(key);
    const alias = opts.aliases.get(key);
    if (!alias || depth > maxDepth) {
      if (depth > maxDepth) loop = true;
      const dir = mailbox(key);
      if (dir !== null) targets.push({ kind: 'mailbox', user: dir });
      else if (key === 'postmaster') targets.push({ kind: 'mailbox', user: key });
      else targets.push({ kind: 'unknown', user: key });
      return;
    }
    for (const raw of alias) {
      const t = raw.trim();
      if (!t) continue;
      if (t === '/dev/null') targets.push({ kind: 'discard' });
      else if (t.startsWith('|') || t.startsWith('/') || t.toLowerCase().startsWith(':include:')) {
        targets.push({ kind: 'unsupported', target: t, why: 'pipes, files and :include: are not supported by the l channel' });
      } else {
        const parsed = parseAddress(t);
        const domain = parsed ? parsed.domain : t.includes('@') ? t.slice(t.lastIndexOf('@') + 1) : null;
        const user = parsed ? parsed.localPart : t.includes('@') ? t.slice(0, t.lastIndexOf('@')) : t;
        if (domain === null) visitTarget(user, depth + 1, key);
        else if (localDomains.has(domain.toLowerCase())) visitTarget(user, depth + 1, key);
        else targets.push({ kind: 'unsupported', target: t, why: 'forwarding to a remote address is not supported by the l channel' });
      }
    }
  };
  // `root: root` style self-references deliver to the mailbox instead of recursing.
  const visitTarget = (name: string, depth: number, from: string) => {
    const { base } = localUser(name);
    if (base === from) {
      const user = mailbox(base) ?? base;
      if (!targets.some((x) => x.kind === 'mailbox' && x.user === user)) targets.push({ kind: 'mailbox', user });
      return;
    }
    visit(name, depth);
  };
  visit(localPart, 0);
  return { targets, loop };
}

/** What the local channel does with a recipient, decided from its expansion. */
export type LocalVerdict =
  /** Failed for good: an alias chain too deep. */
  | { kind: 'loop' }
  /** A target this channel cannot deliver to (deferred: a configuration error to fix). */
  | { kind: 'unsupported'; target: string; why: string }
  /** Nobody to deliver to: no such user (failed for good). */
  | { kind: 'unknown' }
  /** Delivered into these mailboxes (and/or discarded); unknown alias members are skipped. */
  | { kind: 'deliver'; mailboxes: string[]; discarded: boolean; skipped: string[] };

export function localVerdict(expansion: Expansion): LocalVerdict {
  if (expansion.loop) return { kind: 'loop' };
  const unsupported = expansion.targets.find((t): t is Extract<LocalTarget, { kind: 'unsupported' }> => t.kind === 'unsupported');
  if (unsupported) return { kind: 'unsupported', target: unsupported.target, why: unsupported.why };
  const mailboxes = [...new Set(expansion.targets.flatMap((t) => (t.kind === 'mailbox' && isSafeUser(t.user) ? [t.user] : [])))];
  const discarded = expansion.targets.some((t) => t.kind === 'discard');
  if (mailboxes.length === 0 && !discarded) return { kind: 'unknown' };
  const skipped = expansion.targets.flatMap((t) => (t.kind === 'unknown' || (t.kind === 'mailbox' && !isSafeUser(t.user)) ? [t.user] : []));
  return { kind: 'deliver', mailboxes, discarded, skipped };
}
