// Spare queue files: the job controller moves the file of a delivered small message into
// queue/.spare/<boot id>/ instead of deleting it, and the next enqueue (in any process of the
// instance) takes it over and overwrites it. Creating and deleting a file costs an inode and its
// blocks each time; on ext4 without a journal, every new file also skips all inodes freed in the
// last minutes, which made creation cost 1–2 ms of kernel CPU under a steady flow of mail.
//
// Safety: a spare is linked in exactly one place at any moment (rename moves it: queue → spare →
// queue/.tmp → queue). Only after a machine crash can a rename be half on disk (the spare
// directory is never fsynced), leaving a spare that is still a queued message too; spares are
// therefore taken only from the directory of the running boot, and older boots' directories are
// removed by sweepOtherBoots(). Only the job controller retires files, and only once it is done
// reading them: a file that another process may still read (qm delete) is unlinked as before.
import { mkdirSync, readFileSync, renameSync, readdirSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Slots in the pool: retiring into a taken slot frees the file that was there. */
export const SPARE_SLOTS = 2048;
/** Larger messages are deleted, not kept: a spare should cost little disk while it waits. */
export const SPARE_MAX_BYTES = 32 * 1024;
/** After finding the pool empty, a claimer creates new files this long before it looks again. */
const EMPTY_RELIST_MS = 20;
/** Names tried per claim before creating a new file instead (others may take the same names). */
const CLAIM_TRIES = 3;

export interface SpareFilesOptions {
  /** The instance's queue/ directory. */
  queueDir: string;
  /** The running boot's id; null disables reuse (not Linux). Defaults to the kernel's boot_id. */
  bootId?: string | null;
  now?: () => number;
}

export class SpareFiles {
  readonly root: string;
  /** null: reuse is off. */
  readonly dir: string | null;
  private readonly now: () => number;
  private names: string[] = [];
  private emptyUntil = -Infinity;
  private nextSlot = Math.floor(Math.random() * SPARE_SLOTS);
  private dirReady = false;

  constructor(opts: SpareFilesOptions) {
    this.root = join(opts.queueDir, '.spare');
    const bootId = opts.bootId === undefined ? readBootId() : opts.bootId;
    this.dir = bootId ? join(this.root, bootId) : null;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Moves a queue file the caller has finished with into the pool. False when it is not kept
   * (too large, reuse off, the pool cannot be written): the caller deletes it then.
   */
  retireSync(path: string, size: number): boolean {
    if (!this.dir || size > SPARE_MAX_BYTES) return false;
    const slot = join(this.dir, `s${this.nextSlot}`);
    this.nextSlot = (this.nextSlot + 1) % SPARE_SLOTS;
    try {
      if (!this.dirReady) {
        mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        this.dirReady = true;
      }
      renameSync(path, slot);
      return true;
    } catch (err) {
      // ENOENT of the file itself is the caller's to see (it unlinks and gets ENOENT too).
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.dirReady = false;
      return false;
    }
  }

  /**
   * Renames a spare to `tmpPath` for the caller to overwrite (open 'r+', write, truncate). False
   * when there is none at hand: the caller creates a new file. Synchronous: a rename and, now and
   * then, a listing cost less on the caller's thread than a round trip through libuv's pool.
   */
  claimSync(tmpPath: string): boolean {
    if (!this.dir) return false;
    for (let tries = 0; tries < CLAIM_TRIES; tries++) {
      if (this.names.length === 0 && (this.now() < this.emptyUntil || !this.listSync())) return false;
      const name = this.names.pop()!;
      try {
        renameSync(join(this.dir, name), tmpPath);
        return true;
      } catch {
        // another process took it first (ENOENT), or the pool is unusable: try the next name
      }
    }
    return false;
  }

  /** Removes the pools of earlier boots (their spares may still be linked in the queue). */
  async sweepOtherBoots(): Promise<number> {
    let entries: string[];
    try {
      entries = await readdir(this.root);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const e of entries) {
      const path = join(this.root, e);
      if (path === this.dir) continue;
      await rm(path, { recursive: true, force: true }).then(() => removed++, () => {});
    }
    return removed;
  }

  /** How many spares the pool holds now. */
  countSync(): number {
    if (!this.dir) return 0;
    try {
      return readdirSync(this.dir).length;
    } catch {
      return 0;
    }
  }

  /**
   * Lists the pool now (claims use what it finds); false when it is empty. Claims list it when
   * they have no names left, but an empty pool only EMPTY_RELIST_MS later: meanwhile new files
   * are created.
   */
  listSync(): boolean {
    if (!this.dir) return false;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      names = [];
    }
    // Processes list the same pool: each takes its names in its own random order.
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [names[i], names[j]] = [names[j]!, names[i]!];
    }
    this.names = names;
    if (names.length === 0) this.emptyUntil = this.now() + EMPTY_RELIST_MS;
    return names.length > 0;
  }
}

function readBootId(): string | null {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return /^[0-9a-f-]{16,64}$/i.test(id) ? id : null;
  } catch {
    return null;
  }
}
