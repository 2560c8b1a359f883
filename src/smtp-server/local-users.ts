// Who exists on the local channel `l`: a user has a directory mailbox/<user>/ or an entry in
// etc/aliases; `postmaster` always exists. Names compare case-insensitively and `user+tag`
// belongs to `user`. The mailbox directory is listed once and listed again only when its mtime
// changes (a user added or removed), so a dictionary attack costs one stat per RCPT, and a local
// part is never used as a path (no `../` tricks).
import { readdir, stat } from 'node:fs/promises';

/** The user a local part names: unquoted, lower-cased, without `+subaddress`; null when it cannot be one. */
export function localUserKey(localPart: string): string | null {
  let name = localPart;
  if (name.length >= 2 && name.startsWith('"') && name.endsWith('"')) name = name.slice(1, -1).replace(/\\(.)/g, '$1');
  const plus = name.indexOf('+');
  if (plus > 0) name = name.slice(0, plus);
  name = name.toLowerCase();
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return null;
  return name;
}

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
