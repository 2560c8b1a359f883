// Shared pieces of the reliability suites: an in-process SMTP service on this suite's address
// block (127.0.8.0/24), raw-socket helpers that respect back-pressure, reply-line checks, a
// seeded PRNG, and the pure mutators of the configuration fuzz.
import net from 'node:net';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { TestInstance } from '../helpers/instance.js';
import type { SmtpService } from '../../src/smtp-server/service.js';
import { QueueStore } from '../../src/queue/index.js';
import type { Envelope } from '../../src/queue/types.js';
import type { ParsedMailLogRecord } from '../../src/common/mail-log.js';
import { SmtpProbe, TEST_IMTA, listFiles, readMailLog, startInProcessSmtp, type Reply } from '../integration/smtp-harness.js';

export { SmtpProbe, TEST_IMTA, listFiles, readMailLog, type Reply };

/** The service listens here; INTERNAL_IP is this address only. */
const SERVER_IP = '127.0.8.1';
/** A client inside INTERNAL_IP (the server's own address). */
export const INTERNAL_IP = SERVER_IP;
/** Clients outside INTERNAL_IP. */
export const EXTERNAL_IP = '127.0.8.200';
export const OTHER_EXTERNAL_IP = '127.0.8.201';
/** The address of the instance started with bin/start-msg (protocol fuzz). */
export const RUNNING_IP = '127.0.8.10';

export interface FixtureOptions {
  imta?: string;
  /** Extra option.dat lines. */
  options?: string;
  mailboxes?: string[];
  aliases?: string;
  /** Where the service listens, also its INTERNAL_IP (default SERVER_IP; suites on their own block set theirs). */
  serverIp?: string;
}

/** One SMTP service in this process, fed by a pauseOnConnect listener as the dispatcher feeds it. */
export class ReliabilityFixture {
  private constructor(
    readonly inst: TestInstance,
    readonly port: number,
    readonly service: SmtpService,
    private readonly listener: net.Server,
    readonly serverIp: string,
  ) {}

  get root(): string {
    return this.inst.root;
  }

  static async start(opts: FixtureOptions = {}): Promise<ReliabilityFixture> {
    const serverIp = opts.serverIp ?? SERVER_IP;
    const { inst, port, service, listener } = await startInProcessSmtp(serverIp, opts);
    return new ReliabilityFixture(inst, port, service, listener, serverIp);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.listener.close(() => r()));
    await this.service.close(200);
    this.inst.remove();
  }

  probe(localAddress: string = this.serverIp): Promise<SmtpProbe> {
    return SmtpProbe.connect(this.serverIp, this.port, localAddress);
  }

  /** Queue files of a channel (subdirectories included). */
  queueFiles(channel: string): string[] {
    return listFiles(join(this.root, 'queue', channel));
  }

  /** Every queue file of every channel (not the temporaries in queue/.tmp). */
  allQueueFiles(): string[] {
    const q = join(this.root, 'queue');
    if (!existsSync(q)) return [];
    return readdirSync(q, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .flatMap((e) => this.queueFiles(e.name));
  }

  /** Partial messages being written (queue/.tmp). */
  tmpFiles(): string[] {
    return listFiles(join(this.root, 'queue', '.tmp'));
  }

  readQueued(path: string): Promise<{ envelope: Envelope; body: Buffer }> {
    return new QueueStore({ queueDir: join(this.root, 'queue'), corruptDir: join(this.root, 'corrupt'), subdirs: () => 0 }).readMessage(path);
  }

  mailLog(): ParsedMailLogRecord[] {
    return readMailLog(join(this.root, 'log', 'mail.log'));
  }

  /** Remembers the queue now; `expect(n)` then asserts n new queue files and no temporary left. */
  queueMark(): QueueMark {
    const before = new Set(this.allQueueFiles());
    return {
      added: () => this.allQueueFiles().filter((f) => !before.has(f)),
      expect: (n: number, what = 'queue files') => {
        const added = this.allQueueFiles().filter((f) => !before.has(f));
        assert.equal(added.length, n, `${what}: ${added.length} new (${added.join(', ')})`);
        assert.deepEqual(this.tmpFiles(), [], 'nothing partial left in queue/.tmp');
        return added;
      },
    };
  }
}

export interface QueueMark {
  added(): string[];
  expect(n: number, what?: string): string[];
}

/** Asserts a reply's code and enhanced status code, e.g. `assertReply(r, '550 5.5.2')`; `'501 -'` = no enhanced code. */
export function assertReply(reply: Reply | null, expected: string, context = ''): Reply {
  assert.ok(reply, `${context}: no reply, the connection closed`);
  const last = reply.lines[reply.lines.length - 1]!;
  const [code, enhanced] = expected.split(' ');
  assert.equal(reply.code, Number(code), `${context}: ${reply.text}`);
  if (enhanced === '-') assert.doesNotMatch(last, /^\d{3}[ -]\d\.\d{1,3}\.\d{1,3} /, `${context}: ${reply.text}`);
  else assert.ok(last.startsWith(`${code} ${enhanced} `), `${context}: expected ${expected}, got ${reply.text}`);
  return reply;
}

/** Writes `total` octets made by `chunkAt(offset, size)` in `chunkSize` pieces, waiting for 'drain'. */
export async function streamOut(socket: net.Socket, total: number, chunkAt: (offset: number, size: number) => Buffer, chunkSize = 256 * 1024): Promise<void> {
  for (let off = 0; off < total; off += chunkSize) {
    if (socket.destroyed) throw new Error(`socket closed after ${off} of ${total} octets`);
    const ok = socket.write(chunkAt(off, Math.min(chunkSize, total - off)));
    if (!ok) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          socket.off('close', onClose);
          resolve();
        };
        const onClose = () => {
          socket.off('drain', onDrain);
          reject(new Error(`socket closed after ${off} of ${total} octets`));
        };
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
    }
  }
}

// ------------------------------------------------------------------ reply checks (pure)

/** One SMTP reply line: three digits, a space or a dash, text. */
const REPLY_LINE = /^[2-5]\d{2}[ -]/;

/** The problem with a whole reply (its lines), or null when it is well formed. */
export function replyProblem(lines: string[]): string | null {
  if (lines.length === 0) return 'empty reply';
  const code = lines[0]!.slice(0, 3);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!REPLY_LINE.test(line)) return `malformed line ${JSON.stringify(line)}`;
    if (line.slice(0, 3) !== code) return `mixed codes in one reply: ${JSON.stringify(lines)}`;
    const last = i === lines.length - 1;
    if ((line[3] === ' ') !== last) return `continuation marks wrong: ${JSON.stringify(lines)}`;
    if (line.length > 512) return `reply line over 512 octets (${line.length})`;
  }
  return null;
}

// ------------------------------------------------------------------ seeded PRNG (pure)

/** mulberry32: small, fast, good enough to pick fuzz moves; the same seed gives the same run. */
export class Prng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** [0, 1) */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** The seed of a fuzz run: FUZZ_SEED from the environment, else a fresh one (printed on failure). */
export function fuzzSeed(): number {
  const fromEnv = process.env.FUZZ_SEED;
  if (fromEnv && /^\d+$/.test(fromEnv)) return Number(fromEnv) >>> 0;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

// ------------------------------------------------------------------ configuration mutations (pure)

export interface Mutation {
  text: string;
  /** What was done, for the failure message (e.g. `delete line 12`). */
  what: string;
}

/** Words the mutator inserts: option names, channel keywords, values that sit on edges. */
export interface MutationVocabulary {
  keys: readonly string[];
  keywords: readonly string[];
}

const EDGE_VALUES = [
  '', '0', '-1', '1', '2147483648', '99999999999999999999', '1e309', 'NaN', '0x10', '1.5', ' 7 ', 'PT0S', 'PT', 'P1D', 'P99999999D',
  '"unterminated', '"quoted value"', "'single'", '127.0.0.1', '127.0.0.0/33', '::1', '[::1]:53', '999.1.1.1', 'a,b,,c', '\\',
  'yes', 'true', '*', '$U%$D@tcp-daemon', '$?refused', 'é', '\u0000', '\uFFFD', 'x'.repeat(300),
];
const GARBAGE_LINES = [
  '[', ']', '[SERVICE=]', '[POOL=A B]', '[CHANNEL=*]', '[SERVICE=SMTP', '[NOPE=X]', '=', '==', 'KEY', '=value', '<', '<nonexistent-include', '</dev/null',
  '\\', '!', '#', ';', '\t', '   ', '$', '$U', '. $U%$H@', '[] $U%[$L]@', 'defaults', 'l', 'tcp_local smtp', 'bogus_channel smtp mx', '\u0000\u0001\u0002',
  '\uFEFFBOM=1', 'é=é', '\r', '\r\r\n',
];

/** One random edit of a configuration file. */
export function mutateText(text: string, rng: Prng, vocab: MutationVocabulary): Mutation {
  const lines = text.split('\n');
  const at = () => rng.int(lines.length);
  const randomValue = () => (rng.chance(0.5) ? rng.pick(EDGE_VALUES) : String(rng.int(100000) - 100));
  switch (rng.int(12)) {
    case 0: {
      const i = at();
      lines.splice(i, 1);
      return { text: lines.join('\n'), what: `delete line ${i + 1}` };
    }
    case 1: {
      const i = at();
      lines.splice(i, 0, lines[i]!);
      return { text: lines.join('\n'), what: `duplicate line ${i + 1}` };
    }
    case 2: {
      const i = at();
      const j = at();
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return { text: lines.join('\n'), what: `swap lines ${i + 1} and ${j + 1}` };
    }
    case 3: {
      if (text.length === 0) return { text: 'x', what: 'fill empty file' };
      const i = rng.int(text.length);
      const c = rng.chance(0.3) ? String.fromCharCode(rng.int(32)) : rng.chance(0.3) ? String.fromCharCode(0x80 + rng.int(0x780)) : String.fromCharCode(32 + rng.int(95));
      return { text: text.slice(0, i) + c + text.slice(i + 1), what: `flip char ${i} to ${JSON.stringify(c)}` };
    }
    case 4: {
      const i = at();
      const g = rng.pick(GARBAGE_LINES);
      lines.splice(i, 0, g);
      return { text: lines.join('\n'), what: `insert ${JSON.stringify(g)} at line ${i + 1}` };
    }
    case 5: {
      // a number cut short, made huge, negative or not a number
      const numbers = [...text.matchAll(/\d+/g)];
      if (numbers.length === 0) return { text: text + '\n1', what: 'append a number' };
      const m = rng.pick(numbers);
      const replacement = rng.pick([m[0].slice(0, Math.max(0, m[0].length - 1)), m[0] + '0000000000', `-${m[0]}`, `${m[0]}x`, '', '0', `${m[0]}.5`]);
      return { text: text.slice(0, m.index) + replacement + text.slice(m.index + m[0].length), what: `number ${m[0]} → ${JSON.stringify(replacement)}` };
    }
    case 6: {
      const i = at();
      const line = `${rng.pick(vocab.keys)}=${randomValue()}`;
      lines.splice(i, 0, line);
      return { text: lines.join('\n'), what: `insert ${JSON.stringify(line)} at line ${i + 1}` };
    }
    case 7: {
      // a channel keyword (with or without an argument) appended to a line
      const i = at();
      const extra = rng.chance(0.5) ? rng.pick(vocab.keywords) : `${rng.pick(vocab.keywords)} ${randomValue()}`;
      lines[i] = `${lines[i]} ${extra}`;
      return { text: lines.join('\n'), what: `append ${JSON.stringify(extra)} to line ${i + 1}` };
    }
    case 8: {
      const cut = rng.int(text.length + 1);
      return { text: text.slice(0, cut), what: `truncate at ${cut}` };
    }
    case 9: {
      const i = at();
      const blank = rng.chance(0.5);
      if (blank) lines.splice(i, 0, '');
      else if (lines[i] === '') lines.splice(i, 1);
      else lines[i] = lines[i]!.trim();
      return { text: lines.join('\n'), what: `${blank ? 'blank line at' : 'remove blank/trim'} line ${i + 1}` };
    }
    case 10: {
      const i = at();
      const n = 1 + rng.int(64);
      let g = '';
      for (let k = 0; k < n; k++) g += String.fromCharCode(rng.int(256));
      lines.splice(i, 0, g);
      return { text: lines.join('\n'), what: `insert ${n} random octets at line ${i + 1}` };
    }
    default: {
      const eol = rng.pick(['\r\n', '\r', '\n\n', '\\\n']);
      return { text: lines.join(eol), what: `line ends ${JSON.stringify(eol)}` };
    }
  }
}

/** A self-signed key and certificate (P-256, fast to make) in `dir`; returns option.dat lines for them. */
export function makeCertificate(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=mx.tsubame.test', '-days', '1', '-keyout', key, '-out', cert], {
    stdio: 'ignore',
    timeout: 20_000,
  });
  return `TLS_KEY=${key}\nTLS_CERT=${cert}\n`;
}

/** Peak and current resident memory of a process, in octets (Linux /proc). */
export function processMemory(pid: number): { peak: number; now: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { peak: kb('VmHWM'), now: kb('VmRSS') };
  } catch {
    return null;
  }
}
