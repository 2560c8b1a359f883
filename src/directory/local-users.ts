// Who exists on the local channel `l`, asked at RCPT (and by the directory's files source): the local channel's own decision
// (delivery/local-aliases.ts: the canonical reading of the local part, etc/aliases, the
// mailbox/<user>/ directories whatever their case, `postmaster` always) made on a listing of
// mailbox/, so a recipient accepted here is never an unknown user to delivery. The directory is
// listed once and listed again only when its mtime changes (a user added or removed), so a
// dictionary attack costs one stat per RCPT, and a local part is never used as a path (no
// `../` tricks).
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expandLocal, isSafeUser, localUser, localVerdict, type LocalVerdict } from './local-aliases.js';

const RECENT_CHANGE_MS = 2000;

export class LocalUsers {
  /** Lower-case user → the directory's own name. */
  private names = new Map<string, string>();
  private listedMtimeMs = -1;
  private listing: Promise<void> | null = null;

  constructor(
    private readonly mailboxDir: string,
    /** etc/aliases: lower-case local part → targets. */
    private readonly aliases: Map<string, string[]>,
    /** Domains that are this host (alias targets user@one-of-these are local). */
    private readonly localDomains: string[] = ['localhost'],
  ) {}

  /** What local delivery would do with this local part. */
  async verdict(localPart: string): Promise<LocalVerdict> {
    await this.refresh();
    return localVerdict(expandLocal(localPart, { aliases: this.aliases, mailboxName: (user) => this.names.get(user) ?? null, localDomains: this.localDomains }));
  }

  /** The mailbox directory a local part is delivered to (`user+tag`'s own, else `user`'s; whatever its case), or null when there is none. */
  async mailboxOf(localPart: string): Promise<string | null> {
    const { full, base } = localUser(localPart);
    if (!isSafeUser(base)) return null;
    await this.refresh();
    if (full !== base && isSafeUser(full) && this.names.has(full)) return this.names.get(full)!;
    return this.names.get(base) ?? null;
  }

  /** Whether mail for the local part may be queued: delivery will not fail it as unknown (or as an alias loop). */
  async exists(localPart: string): Promise<boolean> {
    const v = await this.verdict(localPart);
    return v.kind === 'deliver' || v.kind === 'unsupported';
  }

  private async refresh(): Promise<void> {
    // One listing at a time; concurrent RCPTs wait for it.
    while (this.listing) await this.listing;
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(this.mailboxDir)).mtimeMs;
    } catch {
      this.names = new Map();
      this.listedMtimeMs = -1;
      return;
    }
    if (mtimeMs === this.listedMtimeMs) return;
    this.listing = (async () => {
      try {
        const names = new Map<string, string>();
        for (const e of await readdir(this.mailboxDir, { withFileTypes: true })) {
          // as delivery finds it: a directory, or a link to one
          const isDir = e.isDirectory() || (e.isSymbolicLink() && (await stat(join(this.mailboxDir, e.name)).then((s) => s.isDirectory(), () => false)));
          const key = e.name.toLowerCase();
          // a directory named exactly in lower case is the one delivery takes first
          if (isDir && (!names.has(key) || e.name === key)) names.set(key, e.name);
        }
        this.names = names;
        // Directory timestamps are coarse (a few ms): a change right after this listing could
        // keep the same mtime, so a listing of a directory changed just now is not trusted.
        this.listedMtimeMs = Date.now() - mtimeMs > RECENT_CHANGE_MS ? mtimeMs : -1;
      } catch {
        this.names = new Map();
        this.listedMtimeMs = -1;
      } finally {
        this.listing = null;
      }
    })();
    await this.listing;
  }
}
