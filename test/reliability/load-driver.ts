// The load of the crash-under-load test and the arithmetic that judges it.
//
// - `startLoad`: a raw SMTP client running many sessions in parallel; every message carries a
//   unique Message-ID and ends in one of four fates, from the client's point of view:
//     accepted  "250 … queued as ID" at the end of DATA: the server owes its delivery;
//     refused   any other reply at the end of DATA: the server must not deliver it;
//     unknown   the final dot was sent and the connection ended without a reply (a kill cut it):
//               the server may or may not have stored it, both are right;
//     unsent    the session broke before the final dot: the server must not deliver it.
// - `judgeDelivery`: pure; compares those fates with what the counting peer received and the
//   kills the driver made, and explains each duplicate by a kill of the job controller.
// - `Prng`: a small seeded generator, so that a failing run can be replayed with its seed.
import net from 'node:net';
import { belongsToInstance } from '../helpers/running-instance.js';

// ------------------------------------------------------------------------------------ PRNG

/** mulberry32: tiny, seedable, good enough to pick kill moments. */
export class Prng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
}

/** The seed from RELIABILITY_SEED when given (to replay a run), else a fresh one. */
export function seedFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const given = Number.parseInt(env.RELIABILITY_SEED ?? '', 10);
  return Number.isInteger(given) ? given >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}

// ------------------------------------------------------------------------------ SMTP client

export interface SmtpReply {
  code: number;
  text: string;
}

/** One SMTP client connection: commands out, whole (multi-line) replies in; null once the connection is gone. */
export class SmtpLineClient {
  private buffer = '';
  private lines: string[] = [];
  private readonly replies: SmtpReply[] = [];
  private readonly waiters: Array<(r: SmtpReply | null) => void> = [];
  closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.setNoDelay(true);
    socket.on('data', (d: string) => this.parse(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
  }

  static connect(host: string, port: number, localAddress: string | undefined, timeoutMs: number): Promise<SmtpLineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, localAddress });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('connect timeout'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new SmtpLineClient(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  private parse(data: string): void {
    this.buffer += data;
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      if (/^\d{3}-/.test(line)) continue;
      const reply = { code: Number.parseInt(line.slice(0, 3), 10) || 0, text: this.lines.join('\n') };
      this.lines = [];
      const waiter = this.waiters.shift();
      if (waiter) waiter(reply);
      else this.replies.push(reply);
    }
  }

  /** The next reply; null when the connection closes first or nothing comes within `timeoutMs`. */
  reply(timeoutMs: number): Promise<SmtpReply | null> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      }, timeoutMs);
      const waiter = (r: SmtpReply | null) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.push(waiter);
    });
  }

  write(text: string): void {
    if (!this.closed) this.socket.write(text);
  }

  async command(line: string, timeoutMs: number): Promise<SmtpReply | null> {
    this.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

// ------------------------------------------------------------------------------------ load

export type MessageFate = 'accepted' | 'refused' | 'unknown' | 'unsent';

export interface SentMessage {
  messageId: string;
  fate: MessageFate;
  /** The reply at the end of DATA, or what broke the session. */
  reply: string;
  /** Queue ids of a 250. */
  queueIds: string[];
  /** When the final dot was written (null when it never was). */
  dotAt: number | null;
  /** When the fate became known. */
  endedAt: number;
}

export interface LoadOptions {
  host: string;
  port: number;
  /** The client's own address (in the caller's block). */
  localAddress?: string;
  /** Sessions running in parallel. */
  sessions: number;
  /** Messages per connection before QUIT and a new connection. */
  perConnection: number;
  /** Messages to try in all (each gets its own Message-ID). */
  total: number;
  /** Makes the Message-ID of message number n (without angle brackets). */
  messageId(n: number): string;
  sender: string;
  recipient(n: number): string;
  /** Lines of body text of message number n (~70 bytes each; above ~900 lines the server streams it to disk). */
  bodyLines?: (n: number) => number;
  /** How long to wait for any reply. */
  replyTimeoutMs?: number;
  /** Pause before reconnecting after a refused connection (the service is being restarted). */
  reconnectDelayMs?: number;
}

export interface LoadRun {
  readonly messages: SentMessage[];
  /** Connections that could not be opened or got no 220 (service down or restarting). */
  readonly connectFailures: number;
  /** Connections that ended without our QUIT. */
  readonly sessionsCut: number;
  /** Resolves when every message was tried, or after stop(). */
  readonly done: Promise<void>;
  accepted(): number;
  stop(): Promise<void>;
}

export function messageText(o: { messageId: string; from: string; to: string; n: number; bodyLines: number }): string {
  const body = Array.from({ length: o.bodyLines }, (_, i) => `line ${i} of message ${o.n}: the quick brown fox jumps over the lazy dog`).join('\r\n');
  return `Message-ID: <${o.messageId}>\r\nFrom: <${o.from}>\r\nTo: <${o.to}>\r\nSubject: crash load ${o.n}\r\nDate: ${new Date().toUTCString()}\r\n\r\n${body}\r\n`;
}

const QUEUED_AS = /^250[ -]\S* ?.*queued as ([0-9A-Za-z]+(?: [0-9A-Za-z]+)*)\s*$/m;

export function startLoad(opts: LoadOptions): LoadRun {
  const messages: SentMessage[] = [];
  const timeoutMs = opts.replyTimeoutMs ?? 20_000;
  const bodyLines = opts.bodyLines ?? (() => 20);
  let next = 0;
  let running = true;
  let connectFailures = 0;
  let sessionsCut = 0;
  let acceptedCount = 0;

  const record = (m: SentMessage) => {
    messages.push(m);
    if (m.fate === 'accepted') acceptedCount++;
  };
  const take = () => (running && next < opts.total ? next++ : null);

  /** One connection: up to perConnection messages. Returns false when it could not even start. */
  async function oneConnection(): Promise<boolean> {
    let client: SmtpLineClient;
    try {
      client = await SmtpLineClient.connect(opts.host, opts.port, opts.localAddress, 5000);
    } catch {
      return false;
    }
    let inHand: { n: number; id: string; dotAt: number | null } | null = null;
    try {
      const greeting = await client.reply(timeoutMs);
      if (greeting?.code !== 220) return false;
      if ((await client.command('EHLO load.crash.test', timeoutMs))?.code !== 250) throw new Error('EHLO');
      for (let k = 0; k < opts.perConnection; k++) {
        const n = take();
        if (n === null) break;
        const id = opts.messageId(n);
        inHand = { n, id, dotAt: null };
        const to = opts.recipient(n);
        for (const [line, want] of [[`MAIL FROM:<${opts.sender}>`, 250], [`RCPT TO:<${to}>`, 250], ['DATA', 354]] as const) {
          const r = await client.command(line, timeoutMs);
          if (r?.code !== want) throw new Error(r ? r.text : 'connection closed');
        }
        const text = messageText({ messageId: id, from: opts.sender, to, n, bodyLines: bodyLines(n) });
        client.write(`${text}.\r\n`);
        inHand.dotAt = Date.now();
        const r = await client.reply(timeoutMs);
        if (!r) throw new Error('connection closed');
        const queued = QUEUED_AS.exec(r.text);
        record({ messageId: id, fate: queued ? 'accepted' : 'refused', reply: r.text, queueIds: queued ? queued[1]!.split(' ') : [], dotAt: inHand.dotAt, endedAt: Date.now() });
        inHand = null;
        if (!queued) throw new Error(r.text);
      }
      await client.command('QUIT', timeoutMs);
      return true;
    } catch (err) {
      sessionsCut++;
      if (inHand) {
        record({ messageId: inHand.id, fate: inHand.dotAt === null ? 'unsent' : 'unknown', reply: (err as Error).message, queueIds: [], dotAt: inHand.dotAt, endedAt: Date.now() });
      }
      return true;
    } finally {
      client.close();
    }
  }

  const loops = Array.from({ length: opts.sessions }, async () => {
    while (running && next < opts.total) {
      if (!(await oneConnection())) {
        connectFailures++;
        await new Promise((r) => setTimeout(r, opts.reconnectDelayMs ?? 100));
      }
    }
  });
  const done = Promise.all(loops).then(() => {});
  return {
    messages,
    get connectFailures() {
      return connectFailures;
    },
    get sessionsCut() {
      return sessionsCut;
    },
    done,
    accepted: () => acceptedCount,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

// ---------------------------------------------------------------------------- the judgement

export type KillKind = 'smtp_server' | 'dispatcher' | 'job_controller' | 'watcher';

export interface KillRecord {
  kind: KillKind;
  pid: number;
  /** Date.now() just before the SIGKILL. */
  at: number;
  /** Delivery jobs (worker threads) running in the job controller at that moment. */
  jobs?: number;
  /** Temporary files in queue/.tmp the victim left behind (SMTP server processes). */
  strayTmp?: number;
}

export interface SinkReceipt {
  messageId: string | null;
  receivedAt: number;
}

export interface Duplicate {
  messageId: string;
  copies: number;
  /** Receive times of every copy, first first. */
  receivedAt: number[];
  /** The job controller kill that explains it (the first copy arrived at most `windowMs` before it), or null. */
  explainedBy: KillRecord | null;
}

export interface Judgement {
  sent: number;
  accepted: number;
  refused: number;
  unknown: number;
  unsent: number;
  /** Distinct Message-IDs the peer received. */
  delivered: number;
  /** Transactions the peer received in all (duplicates included). */
  transactions: number;
  /** Accepted (250) and never received by the peer. */
  lost: string[];
  duplicates: Duplicate[];
  /** Received although the client was refused or never finished the data, or never sent by the load at all. */
  wronglyDelivered: Array<{ messageId: string | null; fate: MessageFate | 'never sent' }>;
  /** The final dot went out, the reply was lost to a kill, and the message was stored and delivered: right (at least once). */
  deliveredUnacknowledged: string[];
  kills: Record<KillKind, number>;
}

/**
 * The verdict. A duplicate is explained by a job controller kill at most `windowMs` after its
 * first copy arrived: the peer had said 250, the job had not yet removed the queue file, and the
 * restarted job controller found it again. The first copy may also end up to `inFlightMs` after
 * the kill: the dead job had written the whole message, the kernel still delivered it, and the
 * peer's 250 went to a closed socket. (A watcher kill stops the job controller gracefully,
 * so it explains nothing; were it ever escalated to SIGKILL, it would show as a job controller kill
 * in the log, not here.)
 */
export function judgeDelivery(input: {
  messages: readonly SentMessage[];
  receipts: readonly SinkReceipt[];
  kills: readonly KillRecord[];
  /** How long before a kill a first copy may have arrived. */
  windowMs: number;
  /** How long after it: bytes the killed job had written were still on their way (default 1 s). */
  inFlightMs?: number;
}): Judgement {
  const inFlightMs = input.inFlightMs ?? 1000;
  const fates = new Map(input.messages.map((m) => [m.messageId, m.fate] as const));
  const copies = new Map<string, number[]>();
  const wronglyDelivered: Judgement['wronglyDelivered'] = [];
  for (const r of input.receipts) {
    const id = r.messageId?.replace(/^<|>$/g, '') ?? null;
    const fate = id === null ? undefined : fates.get(id);
    if (id === null || fate === undefined) {
      wronglyDelivered.push({ messageId: id, fate: 'never sent' });
      continue;
    }
    const times = copies.get(id) ?? [];
    times.push(r.receivedAt);
    copies.set(id, times);
  }
  const jcKills = input.kills.filter((k) => k.kind === 'job_controller');
  const duplicates: Duplicate[] = [];
  for (const [messageId, times] of copies) {
    const fate = fates.get(messageId)!;
    if (fate === 'refused' || fate === 'unsent') wronglyDelivered.push({ messageId, fate });
    if (times.length < 2) continue;
    const sorted = [...times].sort((a, b) => a - b);
    const first = sorted[0]!;
    const explainedBy = jcKills.find((k) => first >= k.at - input.windowMs && first <= k.at + inFlightMs) ?? null;
    duplicates.push({ messageId, copies: times.length, receivedAt: sorted, explainedBy });
  }
  const count = (f: MessageFate) => input.messages.filter((m) => m.fate === f).length;
  const kills = { smtp_server: 0, dispatcher: 0, job_controller: 0, watcher: 0 };
  for (const k of input.kills) kills[k.kind]++;
  return {
    sent: input.messages.length,
    accepted: count('accepted'),
    refused: count('refused'),
    unknown: count('unknown'),
    unsent: count('unsent'),
    delivered: copies.size,
    transactions: input.receipts.length,
    lost: input.messages.filter((m) => m.fate === 'accepted' && !copies.has(m.messageId)).map((m) => m.messageId),
    duplicates,
    wronglyDelivered,
    deliveredUnacknowledged: input.messages.filter((m) => m.fate === 'unknown' && copies.has(m.messageId)).map((m) => m.messageId),
    kills,
  };
}

/** One line per figure, for the test's diagnostics and docs/RELIABILITY.md. */
export function describeJudgement(j: Judgement): string[] {
  const explained = j.duplicates.filter((d) => d.explainedBy);
  const gaps = explained.map((d) => d.explainedBy!.at - d.receivedAt[0]!);
  const range = gaps.length ? `; first copies from ${Math.max(...gaps)} ms before to ${Math.max(0, -Math.min(...gaps))} ms after the kill` : '';
  return [
    `messages sent ${j.sent}: accepted (250) ${j.accepted}, refused ${j.refused}, reply lost to a kill ${j.unknown}, cut before the end of DATA ${j.unsent}`,
    `delivered ${j.delivered} distinct (${j.transactions} transactions), lost ${j.lost.length}, delivered without a 250 seen ${j.deliveredUnacknowledged.length}, wrongly delivered ${j.wronglyDelivered.length}`,
    `duplicates ${j.duplicates.length} (${explained.length} explained by a job controller kill${range})`,
    `kills: smtp_server ${j.kills.smtp_server}, dispatcher ${j.kills.dispatcher}, job_controller ${j.kills.job_controller}, watcher ${j.kills.watcher}`,
  ];
}

// ------------------------------------------------------------------------------- clean-up

/** A live process started for the instance at `root` (IMTA_ROOT in its environment); a reused pid is not. */
/**
 * Drops from `pids` every process that no longer belongs to the instance. A test that kills
 * many processes sees many pids, and with pid_max at 32768 a dead one may already be someone
 * else's: cleanup must not kill that.
 */
export { belongsToInstance };

export function keepInstancePids(pids: Set<number>, root: string): void {
  for (const pid of [...pids]) if (!belongsToInstance(pid, root)) pids.delete(pid);
}
