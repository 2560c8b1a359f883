// Who exists on the local channel `l`: a user has a directory mailbox/<user>/ or an entry in
// etc/aliases; `postmaster` always exists. Names compare case-insensitively and `user+tag`
// belongs to `user`. The mailbox directory is listed once and listed again only when its mtime
// changes (a user added or removed), so a dictionary attack costs one stat per RCPT, and a local
// part is never used as a path (no `../` tricks). Moved here from smtp-server/local-users.ts
// (which re-exports it) for the directory's files source.
import { readdir, stat } from 'node:fs/promises';
import { localUserKey } from './local-part.js';

export { localUserKey };

const RECENT_CHANGE_MS = 2000;

export class LocalUsers {
  private names: Set<string> = new Set();
  private listedMtimeMs = -1;
  private listing: Promise<void> | null = null;

  constructor(
    private readonly mailboxDir: string,
    /** etc/aliases: lower-case local part → targets. */
    private readonly aliases: ReadonlyMap<string, unknown>,
  ) {}

  async exists(localPart: string): Promise<boolean> {
    const key = localUserKey(localPart);
    if (key === null) return false;
    if (key === 'postmaster' || this.aliases.has(key)) return true;
    // `user+tag` may itself be an alias or a mailbox name
    const whole = localPart.toLowerCase();
    if (whole !== key && this.aliases.has(whole)) return true;
    await this.refresh();
    return this.names.has(key) || this.names.has(whole);
  }

  /** The mailbox directory a local part is delivered to (`user+tag`'s own, else `user`'s), or null when there is none. */
  async mailboxOf(localPart: string): Promise<string | null> {
    const key = localUserKey(localPart);
    if (key === null) return null;
    const whole = localPart.toLowerCase();
    await this.refresh();
    if (whole !== key && this.names.has(whole)) return whole;
    return this.names.has(key) ? key : null;
  }

  private async refresh(): Promise<void> {
    // One listing at a time; concurrent RCPTs wait for it.
    while (this.listing) await this.listing;
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(this.mailboxDir)).mtimeMs;
    } catch {
      this.names = new Set();
      this.listedMtimeMs = -1;
      return;
    }
    if (mtimeMs === this.listedMtimeMs) return;
    this.listing = (async () => {
      try {
        const entries = await readdir(this.mailboxDir, { withFileTypes: true });
        this.names = new Set(entries.filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => e.name.toLowerCase()));
        // Directory timestamps are coarse (a few ms): a change right after this listing could
        // keep the same mtime, so a listing of a directory changed just now is not trusted.
        this.listedMtimeMs = Date.now() - mtimeMs > RECENT_CHANGE_MS ? mtimeMs : -1;
      } catch {
        this.names = new Set();
        this.listedMtimeMs = -1;
      } finally {
        this.listing = null;
      }
    })();
    await this.listing;
  }
}
