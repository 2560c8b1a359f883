// One socket to one milter: connect with a deadline, write packets with back-pressure and a
// deadline, read whole packets with a deadline. Any failure (refused, reset, closed, timeout,
// bad framing) is a MilterIoError and leaves the socket destroyed; close() ends it cleanly.
// Protocol meaning is not here (filter.ts); framing is protocol.ts's PacketReader.
import net from 'node:net';
import { PacketReader, MilterProtocolError, type Packet } from './protocol.js';
import type { FilterAddress } from './settings.js';

/** The filter cannot be talked to any more; `detail` says why, for the log. */
export class MilterIoError extends Error {
  override name = 'MilterIoError';
}

/** Sees every byte exchanged (for recording fixtures and debugging). */
export type WireTrace = (direction: 'mta' | 'filter', bytes: Buffer) => void;

/** Packets received but not yet read, past which a chattering filter is cut off. */
const MAX_QUEUED_PACKETS = 1000;

export class FilterConnection {
  private readonly reader: PacketReader;
  private readonly queue: Packet[] = [];
  private waiter: { resolve: (p: Packet) => void; reject: (e: Error) => void } | null = null;
  private failure: MilterIoError | null = null;

  private constructor(
    private readonly socket: net.Socket,
    maxPacketBytes: number,
    private readonly trace: WireTrace | undefined,
  ) {
    this.reader = new PacketReader(maxPacketBytes);
    socket.on('data', (bytes: Buffer) => this.received(bytes));
    socket.on('error', (err) => this.fail(new MilterIoError(err.message)));
    socket.on('close', () => this.fail(new MilterIoError('connection closed by the filter')));
    socket.on('end', () => this.fail(new MilterIoError('connection closed by the filter')));
  }

  /** Connects within `timeoutMs`. Throws MilterIoError. */
  static open(address: FilterAddress, opts: { timeoutMs: number; maxPacketBytes: number; trace?: WireTrace }): Promise<FilterConnection> {
    return new Promise((resolve, reject) => {
      const socket = address.kind === 'unix' ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MilterIoError(`connect timed out after ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new MilterIoError(`connect failed: ${err.message}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.setNoDelay(true);
        resolve(new FilterConnection(socket, opts.maxPacketBytes, opts.trace));
      });
    });
  }

  get open(): boolean {
    return this.failure === null;
  }

  /** Writes packets (one write), waiting for the socket to drain when it is full. */
  async write(bytes: Buffer, timeoutMs: number): Promise<void> {
    if (this.failure) throw this.failure;
    this.trace?.('mta', bytes);
    if (this.socket.write(bytes)) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(this.failure ?? new MilterIoError('connection closed by the filter'));
      const timer = setTimeout(() => done(this.fail(new MilterIoError(`write timed out after ${timeoutMs} ms`))), timeoutMs);
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  /** The next packet from the filter, within `timeoutMs`. */
  read(timeoutMs: number): Promise<Packet> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(this.fail(new MilterIoError(`no answer within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.waiter = {
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Sends `last` (QUIT) if still possible, then closes; the socket is destroyed once written. */
  close(last?: Buffer): void {
    if (this.failure) return;
    this.failure = new MilterIoError('connection closed');
    this.rejectWaiter(this.failure);
    if (last && this.socket.writable) {
      this.trace?.('mta', last);
      this.socket.end(last, () => this.socket.destroy());
      // A peer that never reads must not keep the socket half-open.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
  }

  /** Marks the connection broken, destroys the socket and wakes a waiting reader. */
  private fail(err: MilterIoError): MilterIoError {
    if (this.failure) return this.failure;
    this.failure = err;
    this.socket.destroy();
    this.rejectWaiter(err);
    return err;
  }

  private rejectWaiter(err: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private received(bytes: Buffer): void {
    if (this.failure) return;
    this.trace?.('filter', bytes);
    try {
      this.reader.push(bytes);
      for (let p = this.reader.next(); p; p = this.reader.next()) {
        const w = this.waiter;
        if (w) {
          this.waiter = null;
          w.resolve(p);
        } else if (this.queue.push(p) > MAX_QUEUED_PACKETS) {
          throw new MilterProtocolError(`more than ${MAX_QUEUED_PACKETS} packets sent without being asked`);
        }
      }
    } catch (err) {
      this.fail(new MilterIoError((err as Error).message));
    }
  }
}
