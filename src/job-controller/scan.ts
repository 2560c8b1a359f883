// The job controller's queue scans (Postfix's qmgr_scan.c): every channel directory read at once
// (REBUILD_PARALLEL_CHANNEL), the oldest files the index has room for admitted, at start, at every
// SYNCH_TIME (with the sweep of temporary files left by writers killed mid-write), when half of an
// overflowed index is free again, and on request; and the look-up of the messages `qm release`
// and `qm return` put back. Scans never overlap: one asked for while one runs runs after it.
import type { Logger } from '../common/logger.js';
import type { InstanceConfig } from '../config/types.js';
import { arrivalKey, type QueueStore, type ScanEntry } from '../queue/index.js';
import { SmallestN } from './heap.js';
import type { Intake } from './intake.js';
import { forEachLimited } from './parallel.js';
import { ScanProgress } from './scan-progress.js';

/** Reads of envelopes at once during scans. */
const READ_PARALLEL = 32;
/** A temporary file untouched this long and not open in its writer is left over (see QueueStore.sweepTemporary). */
const STALE_TEMPORARY_MS = 10 * 60_000;

export interface ScannerOptions {
  intake: Intake;
  /** The queue store in force (a reload makes a new one). */
  store(): QueueStore;
  config(): InstanceConfig;
  /** A scan admitted messages: start the jobs for them. */
  kick(): void;
  logger: Logger;
  now(): number;
}

export class QueueScanner {
  private scanning: Promise<void> | null = null;
  private scanAgain = false;
  private stopping = false;
  private synchTimer: NodeJS.Timeout | null = null;
  /** Scans so far (status). */
  scans = 0;
  /** The scan under way, for status requests; null between scans. */
  progress: ScanProgress | null = null;

  constructor(private readonly opts: ScannerOptions) {}

  /**
   * Scans every channel directory and admits the oldest files the index has room for. Files
   * beyond that are left for a later scan (the index overflowed).
   */
  rescan(reason: string): Promise<void> {
    if (this.scanning) {
      this.scanAgain = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.scanAgain = false;
          await this.scanOnce(reason);
        } while (this.scanAgain && !this.stopping);
      } catch (err) {
        this.opts.logger.error({ err }, 'queue scan failed');
      } finally {
        this.scanning = null;
      }
      this.opts.kick();
    })();
    return this.scanning;
  }

  /** After messages left the index: a rescan once half of it is free again, when the disk holds more. */
  maybeRescanForRoom(): void {
    const intake = this.opts.intake;
    if (this.stopping || !intake.overflowed || this.scanning) return;
    if (intake.halfFree) void this.rescan('room');
  }

  /** SYNCH_TIME: a rescan (and a sweep of stale temporary files) that often; again after a reload. */
  armSynchTimer(): void {
    if (this.synchTimer) clearInterval(this.synchTimer);
    const sec = Math.max(1, this.opts.config().jobController.synchTimeSec);
    this.synchTimer = setInterval(() => {
      void this.sweepStaleTemporary();
      void this.rescan('synch');
    }, sec * 1000);
    this.synchTimer.unref();
  }

  /**
   * `qm release` / `qm return`: finds the messages (not held) on disk and admits them, to be tried
   * or settled at once. How many were found.
   */
  async admitReleased(ids: readonly string[]): Promise<number> {
    const wanted = this.opts.intake.unindexForRelease(ids);
    const found: ScanEntry[] = [];
    if (wanted.size > 0) {
      for await (const e of this.opts.store().scan()) {
        if (wanted.has(e.id) && !e.held) found.push(e);
        if (found.length === wanted.size) break;
      }
    }
    for (const e of found) await this.opts.intake.admitFile(e.path, 'released');
    return found.length;
  }

  /** No new scans; resolves when the one running (if any) has finished. */
  stop(): Promise<void> {
    this.stopping = true;
    if (this.synchTimer) clearInterval(this.synchTimer);
    return this.scanning?.catch(() => {}) ?? Promise.resolve();
  }

  private async scanOnce(reason: string): Promise<void> {
    const { intake, logger } = this.opts;
    const store = this.opts.store();
    const started = this.opts.now();
    const picker = new SmallestN<ScanEntry>(intake.room, arrivalKey);
    let seen = 0;
    let selected: ScanEntry[];
    let refused = 0;
    const progress = new ScanProgress(reason, started);
    this.progress = progress;
    // A long scan says how far it has got, every few seconds.
    const logProgress = () => {
      if (progress.logDue(this.opts.now())) logger.info({ ...progress.view(), started: undefined }, 'queue scan in progress');
    };
    try {
      const channels = await store.listChannels();
      const parallel = Math.min(100, Math.max(1, this.opts.config().jobController.rebuildParallelChannel));
      await forEachLimited(channels, parallel, async (channel) => {
        for await (const e of store.scan(channel)) {
          if (e.held || intake.has(e.id)) continue;
          seen++;
          progress.listedOne();
          if ((seen & 1023) === 0) logProgress();
          picker.offer(e);
        }
      });
      selected = picker.result();
      progress.reading(selected.length);
      refused = picker.dropped;
      await forEachLimited(selected, READ_PARALLEL, async (e) => {
        if ((progress.readOne() & 255) === 0) logProgress();
        if (intake.has(e.id)) return;
        const file = await intake.read(e.path).catch((err: Error) => {
          logger.warn({ err, path: e.path }, 'cannot read queue file');
          return null;
        });
        if (file && !intake.admit(e.path, file.envelope, file.size, 'scanned') && !intake.has(e.id)) refused++;
      });
    } finally {
      this.progress = null;
    }
    intake.overflowed = refused > 0;
    this.scans++;
    logger.info({ reason, seen, admitted: selected.length, left_on_disk: refused, index: intake.size, ms: this.opts.now() - started }, 'queue scanned');
    this.opts.kick();
  }

  /** Temporary files of writers killed mid-write (SMTP server processes) go at every SYNCH_TIME, not only at start. */
  private async sweepStaleTemporary(): Promise<void> {
    const removed = await this.opts.store().sweepTemporary(STALE_TEMPORARY_MS).catch(() => 0);
    if (removed) this.opts.logger.info({ removed }, 'removed stale temporary files from queue/.tmp');
  }
}
