// A small milter server on a real socket (loopback TCP or a unix socket) for tests: each
// connection runs a script that reads the MTA's commands decoded and answers with well-formed
// packets, raw bytes, silence or a close. `standardFilter` is a well-behaved filter to build on.
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeCommand,
  encodeAnswer,
  MILTER_VERSION,
  MTA_ACTIONS,
  PacketReader,
  type FilterAnswer,
  type MtaCommand,
  type OptnegAnswer,
  type Packet,
} from '../../src/milter/protocol.js';
import type { FilterSpec } from '../../src/milter/settings.js';

export interface FakeConnection {
  socket: net.Socket;
  /** Every command received so far, in order. */
  received: MtaCommand[];
  /** The next command (macros included), within `timeoutMs`; null when the MTA closed. */
  next(timeoutMs?: number): Promise<MtaCommand | null>;
  /** Reads commands until one of `type` (returned); null when the MTA closed first. */
  until(type: MtaCommand['type'], timeoutMs?: number): Promise<MtaCommand | null>;
  send(answer: FilterAnswer | { type: 'optneg'; answer: OptnegAnswer }): void;
  sendRaw(bytes: Buffer): void;
  /** Reads the MTA's SMFIC_OPTNEG and answers it. */
  negotiate(answer?: Partial<OptnegAnswer>): Promise<MtaCommand>;
  /** Resolves when the socket is closed (by either side). */
  closed: Promise<void>;
  /** Raw MTA packets in order (for byte comparisons). */
  packets: Packet[];
}

export interface FakeMilter {
  spec: FilterSpec;
  connections: FakeConnection[];
  /** Every connection's script settled (resolved or failed). */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export type Script = (c: FakeConnection) => Promise<void>;

function connection(socket: net.Socket): FakeConnection {
  const reader = new PacketReader(64 * 1024 * 1024);
  const queue: Packet[] = [];
  let waiting: ((p: Packet | null) => void) | null = null;
  let ended = false;
  const c: FakeConnection = {
    socket,
    received: [],
    packets: [],
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
    async next(timeoutMs = 5000) {
      const p =
        queue.shift() ??
        (ended
          ? null
          : await new Promise<Packet | null>((resolve, reject) => {
              const timer = setTimeout(() => {
                waiting = null;
                reject(new Error(`fake milter: no command within ${timeoutMs} ms`));
              }, timeoutMs);
              waiting = (p) => {
                clearTimeout(timer);
                resolve(p);
              };
            }));
      if (!p) return null;
      const cmd = decodeCommand(p);
      c.received.push(cmd);
      c.packets.push(p);
      return cmd;
    },
    async until(type, timeoutMs = 5000) {
      for (;;) {
        const cmd = await c.next(timeoutMs);
        if (!cmd || cmd.type === type) return cmd;
      }
    },
    send(answer) {
      if (!socket.destroyed) socket.write(encodeAnswer(answer));
    },
    sendRaw(bytes) {
      if (!socket.destroyed) socket.write(bytes);
    },
    async negotiate(answer = {}) {
      const cmd = await c.next();
      if (cmd?.type !== 'optneg') throw new Error(`fake milter: expected optneg, got ${cmd?.type}`);
      c.send({ type: 'optneg', answer: { version: MILTER_VERSION, actions: MTA_ACTIONS, protocol: 0, macroLists: {}, ...answer } });
      return cmd;
    },
  };
  const deliver = (p: Packet | null) => {
    const w = waiting;
    waiting = null;
    if (w) w(p);
    else if (p) queue.push(p);
  };
  socket.on('data', (bytes: Buffer) => {
    reader.push(bytes);
    for (let p = reader.next(); p; p = reader.next()) deliver(p);
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    ended = true;
    deliver(null);
  });
  return c;
}

/** Starts the server; `script` runs for every connection. `unix: true` listens on a socket file. */
export async function startFakeMilter(script: Script, opts: { unix?: boolean } = {}): Promise<FakeMilter> {
  const connections: FakeConnection[] = [];
  const runs: Array<Promise<unknown>> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const c = connection(socket);
    connections.push(c);
    runs.push(script(c).catch(() => socket.destroy()));
  });
  const dir = opts.unix ? mkdtempSync(join(tmpdir(), 'tsubame-milter-')) : null;
  const spec: FilterSpec = await new Promise((resolve, reject) => {
    server.once('error', reject);
    if (dir) {
      const path = join(dir, 'milter.sock');
      server.listen(path, () => resolve({ name: `unix:${path}`, address: { kind: 'unix', path } }));
    } else {
      server.listen(0, '127.0.0.1', () => {
        const port = (server.address() as net.AddressInfo).port;
        resolve({ name: `inet:127.0.0.1:${port}`, address: { kind: 'inet', host: '127.0.0.1', port } });
      });
    }
  });
  return {
    spec,
    connections,
    async settled() {
      await Promise.allSettled(runs);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Events a filter answers unless it negotiated not to (no SMFIP_NR_* here: every one is answered). */
const ANSWERED: ReadonlySet<MtaCommand['type']> = new Set(['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body']);

/**
 * A well-behaved filter: negotiates (`optneg`), answers `continue` to every event (or what
 * `answer` returns for it), and at the end of each message sends `eom(message number)` then
 * the final answer. Returns when the MTA quits or closes.
 */
export function standardFilter(
  opts: {
    optneg?: Partial<OptnegAnswer>;
    answer?: (cmd: MtaCommand, c: FakeConnection) => FilterAnswer | null | undefined;
    eom?: (n: number, c: FakeConnection) => FilterAnswer[];
  } = {},
): Script {
  return async (c) => {
    await c.negotiate(opts.optneg);
    const noReply = opts.optneg?.protocol ?? 0;
    let messages = 0;
    for (;;) {
      const cmd = await c.next(10_000);
      if (!cmd || cmd.type === 'quit') return;
      if (cmd.type === 'eob') {
        const answers = opts.eom?.(messages++, c) ?? [{ type: 'continue' }];
        for (const a of answers) c.send(a);
        continue;
      }
      const special = opts.answer?.(cmd, c);
      if (special) {
        c.send(special);
        continue;
      }
      if (ANSWERED.has(cmd.type) && !silent(cmd.type, noReply)) c.send({ type: 'continue' });
    }
  };
}

/** The SMFIP_NR_* flag of each answered event. */
function silent(type: MtaCommand['type'], protocol: number): boolean {
  const bit: Record<string, number> = { connect: 12, helo: 13, mail: 14, rcpt: 15, data: 16, header: 7, eoh: 18, body: 19 };
  return (protocol & (1 << bit[type]!)) !== 0;
}
