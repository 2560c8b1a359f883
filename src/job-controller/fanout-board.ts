// What the SMTP channels' fan-outs have in hand (connections, destinations, their traffic shaping),
// carried from the delivery threads to the job controller: each thread publishes the status of its
// channels' fan-outs on the instance's BroadcastChannel, every second while a channel has mail or
// connections and every few seconds otherwise (a destination's pause ends while it is idle); the
// job controller keeps the latest report per channel for its status reply (imsimta qm shaping,
// the status page, the metrics). A report older than STALE_MS (its thread is gone) is dropped.
import { BroadcastChannel } from 'node:worker_threads';
import type { FanoutStatus } from '../delivery/fanout.js';

const BUSY_EVERY_MS = 1000;
const IDLE_EVERY_MS = 5000;
const STALE_MS = 15_000;

interface FanoutReport {
  channel: string;
  thread: number;
  at: number;
  /** null: the channel's job in that thread was closed. */
  status: FanoutStatus | null;
}

function channelName(root: string): string {
  return `tsubame-fanout ${root}`;
}

/** The delivery thread's side: publishes its channels' fan-out status until closed. */
export class FanoutPublisher {
  private readonly bc: BroadcastChannel;
  private timer: NodeJS.Timeout | null = null;
  private lastIdle = 0;

  constructor(
    root: string,
    private readonly thread: number,
    private readonly jobs: () => Array<{ channel: string; status(): FanoutStatus }>,
  ) {
    this.bc = new BroadcastChannel(channelName(root));
    (this.bc as unknown as { unref?: () => void }).unref?.();
    this.timer = setInterval(() => this.publish(), BUSY_EVERY_MS);
    this.timer.unref();
  }

  /** Publishes now (busy channels every tick, idle ones every IDLE_EVERY_MS). */
  publish(force = false): void {
    const now = Date.now();
    const idleTurn = force || now - this.lastIdle >= IDLE_EVERY_MS;
    if (idleTurn) this.lastIdle = now;
    for (const job of this.jobs()) {
      const status = job.status();
      const busy = status.batches > 0 || status.connections.open > 0;
      if (busy || idleTurn) this.post({ channel: job.channel, thread: this.thread, at: now, status });
    }
  }

  /** The channel's job here was closed. */
  gone(channel: string): void {
    this.post({ channel, thread: this.thread, at: Date.now(), status: null });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.bc.close();
  }

  private post(report: FanoutReport): void {
    try {
      this.bc.postMessage(report);
    } catch {
      /* closed meanwhile */
    }
  }
}

/** The job controller's side: the latest fan-out status per channel. */
export class FanoutBoard {
  private readonly bc: BroadcastChannel;
  private readonly reports = new Map<string, FanoutReport>();

  constructor(root: string, private readonly now: () => number = Date.now) {
    this.bc = new BroadcastChannel(channelName(root));
    (this.bc as unknown as { unref?: () => void }).unref?.();
    this.bc.onmessage = (event: unknown) => this.take((event as { data: FanoutReport }).data);
  }

  /** Per channel, what its fan-out reported last (within STALE_MS). */
  latest(): Record<string, FanoutStatus> {
    const best = new Map<string, FanoutReport>();
    const now = this.now();
    for (const [key, r] of this.reports) {
      if (now - r.at > STALE_MS || !r.status) {
        this.reports.delete(key);
        continue;
      }
      // Two threads for one channel only while a reload hands over: the newer report stands.
      const have = best.get(r.channel);
      if (!have || r.at > have.at) best.set(r.channel, r);
    }
    const out: Record<string, FanoutStatus> = {};
    for (const [channel, r] of best) out[channel] = r.status!;
    return out;
  }

  close(): void {
    this.bc.close();
  }

  private take(r: FanoutReport): void {
    if (!r || typeof r.channel !== 'string') return;
    const key = `${r.channel}\0${r.thread}`;
    if (r.status === null) this.reports.delete(key);
    else this.reports.set(key, r);
  }
}
