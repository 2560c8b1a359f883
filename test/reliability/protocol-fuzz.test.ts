// Protocol fuzz against a real instance (bin/start-msg dispatcher: the watcher, the dispatcher and
// two SMTP server processes fed through the socket hand-off). A seeded PRNG drives a few
// concurrent clients for a fixed time: valid commands, mutated commands, garbage lines, pipelined
// groups, messages with hostile content, early talk, abrupt disconnects. Every reply must be
// well formed (`^\d{3}[ -]`, one code per reply, CRLF, an enhanced code of the same class) and of a
// code that makes sense for what was sent; no process may die or be replaced; afterwards a clean
// session still delivers. Reproduce a run with FUZZ_SEED=<seed> (printed on failure).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { MtaInstance, isAlive, type ProcessRow } from '../helpers/running-instance.js';
import { Prng, fuzzSeed, replyProblem, RUNNING_IP, TEST_IMTA, readMailLog } from './helpers.js';

/** Clients inside and outside INTERNAL_IP (= the server's address). */
const INTERNAL_CLIENT = RUNNING_IP;
const EXTERNAL_CLIENT = '127.0.8.202';
const FUZZ_MS = 15_000;
const CLIENTS = 3;
const REPLY_TIMEOUT_MS = 10_000;

// ------------------------------------------------------------------ what a reply may be

type Kind = 'greeting' | 'early' | 'helo' | 'mail' | 'rcpt' | 'data' | 'dataEnd' | 'rset' | 'noop' | 'help' | 'vrfy' | 'quit' | 'etrn' | 'junk';

/** Reply codes that make sense per kind of input (421 = the server closes, always allowed but the greeting's delay). */
const ALLOWED: Record<Kind, readonly number[]> = {
  greeting: [220, 421],
  early: [421],
  helo: [250, 501],
  mail: [250, 501, 503, 552, 553, 555, 530, 451, 452],
  rcpt: [250, 251, 452, 501, 503, 550, 551, 553, 555, 451],
  data: [354, 503, 554, 451],
  dataEnd: [250, 550, 552, 554, 451, 452],
  rset: [250, 501],
  noop: [250],
  help: [214, 502],
  vrfy: [252, 250, 501, 502, 550],
  quit: [221],
  etrn: [250, 251, 252, 253, 458, 459, 500, 501, 502, 503],
  junk: [500, 501, 502, 503, 504, 555],
};

const VERB_KIND: Record<string, Kind> = {
  EHLO: 'helo', HELO: 'helo', MAIL: 'mail', RCPT: 'rcpt', DATA: 'data', RSET: 'rset', NOOP: 'noop', HELP: 'help', VRFY: 'vrfy', QUIT: 'quit', ETRN: 'etrn',
};

/** As smtp-server picks the verb: the text before the first space, upper-cased. */
function kindOf(line: string): Kind {
  const verb = Buffer.from(line, 'latin1').toString('utf8').split(' ')[0]!.toUpperCase();
  return VERB_KIND[verb] ?? 'junk';
}

/** What is wrong with a reply to `kind`, or null. */
function replyFault(kind: Kind, lines: string[]): string | null {
  const form = replyProblem(lines);
  if (form) return form;
  const code = Number(lines[0]!.slice(0, 3));
  for (const l of lines) {
    const enhanced = /^\d{3}[ -](\d)\.\d{1,3}\.\d{1,3} /.exec(l);
    if (enhanced && enhanced[1] !== l[0]) return `enhanced code of another class: ${JSON.stringify(l)}`;
  }
  if (code === 421 && kind !== 'greeting') return null;
  if (!ALLOWED[kind].includes(code)) return `${code} makes no sense for ${kind}: ${JSON.stringify(lines)}`;
  return null;
}

// ------------------------------------------------------------------ a strict raw client

class FuzzClient {
  private buffer = '';
  private replies: string[][] = [];
  private waiters: Array<(r: string[] | null) => void> = [];
  /** Problems with the octets the server sent (bare LF, a partial line at close). */
  readonly faults: string[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.parse();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      if (this.buffer !== '') this.faults.push(`partial reply at close: ${JSON.stringify(this.buffer.slice(0, 200))}`);
      for (const w of this.waiters.splice(0)) w(null);
    });
  }

  static open(port: number, localAddress: string): Promise<FuzzClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: RUNNING_IP, port, localAddress });
      socket.once('connect', () => resolve(new FuzzClient(socket)));
      socket.once('error', reject);
    });
  }

  private parse(): void {
    for (;;) {
      const lines: string[] = [];
      let rest = this.buffer;
      let complete = false;
      for (;;) {
        const nl = rest.indexOf('\n');
        if (nl < 0) break;
        if (rest[nl - 1] !== '\r') this.faults.push(`bare LF in the reply stream: ${JSON.stringify(rest.slice(0, nl + 1).slice(0, 200))}`);
        const line = rest.slice(0, nl).replace(/\r$/, '');
        rest = rest.slice(nl + 1);
        lines.push(line);
        if (!/^\d{3}-/.test(line)) {
          complete = true;
          break;
        }
      }
      if (!complete) return;
      this.buffer = rest;
      const w = this.waiters.shift();
      if (w) w(lines);
      else this.replies.push(lines);
    }
  }

  /** The next reply's lines; null when the connection closed first; 'timeout' when the server said nothing. */
  reply(timeoutMs = REPLY_TIMEOUT_MS): Promise<string[] | null | 'timeout'> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve('timeout');
      }, timeoutMs);
      const done = (r: string[] | null) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.push(done);
    });
  }

  write(text: string): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.from(text, 'latin1'));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ------------------------------------------------------------------ generators (pure, seeded)

const DOMAINS = ['localhost', 'local.test', 'hosted.test', 'blocked.test', 'remote.example', '[127.0.0.1]', '[IPv6:::1]', 'xn--bcher-kva.example', 'bücher.example', 'a'.repeat(70) + '.example', ''];
const LOCALS = ['joe', 'JOE', 'postmaster', 'nobody', 'joe+tag', 'a%b', 'r!u', '"q@x"', '"sp ace"', 'ü', '\xff', 'x'.repeat(70), '', '.dot', 'dot.'];

const GOOD_ADDRESSES = ['joe@localhost', 'Joe+tag@LOCAL.TEST', 'postmaster', 'anyone@hosted.test', 'friend@remote.example'];

function address(rng: Prng): string {
  if (rng.chance(0.4)) return rng.pick(GOOD_ADDRESSES);
  if (rng.chance(0.05)) return '';
  if (rng.chance(0.05)) return 'postmaster';
  const route = rng.chance(0.05) ? '@relay.example:' : '';
  return `${route}${rng.pick(LOCALS)}@${rng.pick(DOMAINS)}`;
}

function param(rng: Prng, rcpt: boolean): string {
  const choices = rcpt
    ? ['', '', ' NOTIFY=SUCCESS,FAILURE', ' NOTIFY=NEVER', ' NOTIFY=NEVER,DELAY', ' ORCPT=rfc822;joe@localhost', ' ORCPT=x', ' SIZE=10', ' FOO=BAR']
    : ['', '', ' SIZE=100', ' SIZE=99999999999', ' SIZE=x', ' BODY=8BITMIME', ' BODY=BINARYMIME', ' SMTPUTF8', ' RET=HDRS', ' RET=FULL RET=FULL', ' ENVID=abc', ' ENVID=a+0D+0Ab', ' AUTH=<>', ' X=' + 'y'.repeat(300)];
  return rng.pick(choices);
}

function validCommand(rng: Prng): string {
  switch (rng.int(12)) {
    case 0:
      return `${rng.pick(['EHLO', 'HELO', 'ehlo', 'LHLO'])} ${rng.pick(['client.example', '[127.0.8.202]', 'x', 'mx.tsubame.test', 'bad_name!', ''])}`;
    case 1:
    case 2:
      return `MAIL FROM:<${address(rng)}>${param(rng, false)}`;
    case 3:
    case 4:
    case 5:
      return `RCPT TO:<${address(rng)}>${param(rng, true)}`;
    case 6:
      return rng.pick(['RSET', 'NOOP', 'NOOP hello', 'HELP', 'HELP DATA']);
    case 7:
      return `VRFY ${rng.pick(['joe', 'nobody', '', '<joe@localhost>'])}`;
    case 8:
      return `ETRN ${rng.pick(['remote.example', '@remote.example', '#queue', '', 'bad domain', 'localhost'])}`;
    case 9:
      return rng.pick(['EXPN joe', 'STARTTLS', 'AUTH PLAIN AGpvZQBz', 'BDAT 3 LAST', 'XCLIENT ADDR=127.0.8.10', 'TURN', 'SEND FROM:<a@b>']);
    case 10:
      return `mail from: <${address(rng)}>`;
    default:
      return `rcpt to:${address(rng)}`;
  }
}

/** A command with one random edit; never a line end inside. */
function mutate(line: string, rng: Prng): string {
  const i = rng.int(line.length + 1);
  switch (rng.int(6)) {
    case 0:
      return line.slice(0, i) + String.fromCharCode(rng.int(256)) + line.slice(i + 1);
    case 1:
      return line.slice(0, i);
    case 2:
      return line.slice(0, i) + line.slice(i).repeat(2);
    case 3:
      return line.toLowerCase();
    case 4:
      return line.slice(0, i) + ' '.repeat(1 + rng.int(5)) + line.slice(i);
    default:
      return line + 'Z'.repeat(rng.int(600));
  }
}

function garbage(rng: Prng): string {
  const n = rng.chance(0.05) ? 2000 + rng.int(1000) : rng.int(120);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(rng.int(256));
  return s;
}

/** A message body that never contains CRLF.CRLF before its end; hostile content on purpose. */
function body(rng: Prng): string {
  const lines: string[] = [];
  const n = rng.int(30);
  if (rng.chance(0.7)) lines.push('Subject: fuzz', `Message-ID: <${rng.int(1e9)}@fuzz.example>`, '');
  for (let i = 0; i < n; i++) {
    lines.push(
      rng.pick([
        'plain text',
        '.leading dot',
        '..two dots',
        '.',
        'bare\nLF',
        'bare\rCR',
        '\n.\n',
        'NUL\0here',
        '\xff\xfe 8-bit',
        'x'.repeat(rng.chance(0.1) ? 1200 : 80),
        'MAIL FROM:<evil@x>',
        'QUIT',
        '',
      ]),
    );
  }
  // dot-stuff as a client must; `.` alone would end the data
  return lines.map((l) => (l.startsWith('.') ? '.' + l : l)).join('\r\n');
}

test('the checkers catch what they must (so a clean fuzz run means something)', () => {
  assert.equal(replyFault('noop', ['250 2.0.0 OK']), null);
  assert.equal(replyFault('helo', ['250-mx.tsubame.test Hello', '250 SIZE 10']), null);
  assert.equal(replyFault('rcpt', ['421 4.4.2 closing']), null);
  assert.match(replyFault('noop', ['250 2.0.0 OK', 'junk'])!, /malformed|continuation/);
  assert.match(replyFault('noop', ['25 OK'])!, /malformed/);
  assert.match(replyFault('helo', ['250-a', '251 b'])!, /mixed codes/);
  assert.match(replyFault('helo', ['250 a', '250 b'])!, /continuation/);
  assert.match(replyFault('rcpt', ['550 4.1.1 x'])!, /another class/);
  assert.match(replyFault('noop', ['550 5.5.1 no'])!, /makes no sense/);
  assert.match(replyFault('greeting', ['421 4.4.2 x']) ?? 'allowed', /allowed/);
  assert.match(replyFault('noop', [`250 ${'x'.repeat(600)}`])!, /over 512/);
  assert.equal(kindOf('mail from:<a@b>'), 'mail');
  assert.equal(kindOf('DATA\tx'), 'junk');
  const a = new Prng(7);
  const b = new Prng(7);
  assert.deepEqual(Array.from({ length: 5 }, () => a.next()), Array.from({ length: 5 }, () => b.next()));
  for (let i = 0; i < 500; i++) assert.ok(!('\r\n' + body(new Prng(i))).includes('\r\n.\r\n'), `body ${i} ends the data early`);
});

// ------------------------------------------------------------------ the run

interface FuzzStats {
  sessions: number;
  commands: number;
  messages: number;
  replies: Map<number, number>;
}

let mta: MtaInstance;
let pidsBefore: ProcessRow[];
const seed = fuzzSeed();

before(async () => {
  mta = await MtaInstance.create({ address: RUNNING_IP, service: 'MIN_PROCS=2\nMAX_PROCS=2\nMAX_CONNS=50\nMAX_LIFE_CONNS=1000000\nMAX_LIFE_TIME=86400' });
  mta.inst.write('etc/imta.cnf', TEST_IMTA);
  mta.inst.write('etc/option.dat', `INTERNAL_IP=${RUNNING_IP}/32\nLOCAL_HOST=mx.tsubame.test\nDNS_SERVERS=127.0.8.53\nMAX_RECIPIENTS=20\nMAX_MESSAGE_SIZE=200000\nSMTP_TIMEOUT=30\nSMTP_ERROR_SLEEP_TIME=0\n`);
  mkdirSync(join(mta.root, 'mailbox', 'joe', 'new'), { recursive: true });
  const r = await mta.cli('start-msg', ['dispatcher']);
  assert.equal(r.code, 0, r.stderr);
  pidsBefore = await waitFor(async () => {
    const rows = await mta.processes();
    return rows.filter((p) => p.role === 'smtp_server' && p.ready).length === 2 ? rows : null;
  }, { what: 'two ready SMTP server processes' });
});
after(async () => {
  await mta?.cleanup();
});

async function fuzzSession(rng: Prng, stats: FuzzStats, faults: string[]): Promise<void> {
  const external = rng.chance(0.3);
  const c = await FuzzClient.open(mta.port, external ? EXTERNAL_CLIENT : INTERNAL_CLIENT);
  stats.sessions++;
  const fault = (what: string, sent: string) => {
    if (faults.length < 10) faults.push(`${what} (after ${JSON.stringify(sent.slice(0, 120))})`);
  };
  /** Waits for one reply to `sent`; false when the session is over. */
  const expect = async (kind: Kind, sent: string): Promise<boolean> => {
    const r = await c.reply();
    if (r === 'timeout') {
      fault(`no reply within ${REPLY_TIMEOUT_MS} ms`, sent);
      return false;
    }
    if (r === null) {
      fault('connection closed without a reply', sent);
      return false;
    }
    stats.replies.set(Number(r[0]!.slice(0, 3)), (stats.replies.get(Number(r[0]!.slice(0, 3))) ?? 0) + 1);
    const problem = replyFault(kind, r);
    if (problem) fault(problem, sent);
    const code = Number(r[0]!.slice(0, 3));
    if (code === 421 || code === 221) {
      const closed = await waitFor(() => c.closed, { timeoutMs: 5000, what: 'close' }).catch(() => false);
      if (!closed) fault(`still open after ${code}`, sent);
      return false;
    }
    return kind === 'data' ? code === 354 : true;
  };
  try {
    if (external && rng.chance(0.1)) {
      const line = validCommand(rng);
      c.write(line + '\r\n');
      await expect('early', line);
      return;
    }
    if (!(await expect('greeting', '<connect>'))) return;
    const steps = 1 + rng.int(40);
    for (let s = 0; s < steps; s++) {
      const roll = rng.next();
      if (roll < 0.03) {
        // abrupt end, sometimes halfway through a line
        if (rng.chance(0.5)) c.write(validCommand(rng).slice(0, 5));
        return;
      }
      if (roll < 0.1) {
        // a pipelined group of commands that each get exactly one reply
        const group = Array.from({ length: 2 + rng.int(7) }, () => (rng.chance(0.7) ? validCommand(rng) : mutate(validCommand(rng), rng))).filter((l) => !['data', 'quit'].includes(kindOf(l)) && !l.includes('\n') && !l.includes('\r'));
        c.write(group.map((l) => l + '\r\n').join(''));
        stats.commands += group.length;
        for (const l of group) if (!(await expect(kindOf(l), l))) return;
        continue;
      }
      if (roll < 0.2) {
        if (rng.chance(0.6)) {
          // a whole transaction, pipelined as a client that saw PIPELINING would send it
          const group = ['RSET', `MAIL FROM:<${rng.pick(GOOD_ADDRESSES)}>${param(rng, false)}`, ...Array.from({ length: 1 + rng.int(3) }, () => `RCPT TO:<${address(rng)}>`)];
          c.write(group.map((l) => l + '\r\n').join(''));
          stats.commands += group.length;
          for (const l of group) if (!(await expect(kindOf(l), l))) return;
        }
        c.write('DATA\r\n');
        stats.commands++;
        // refused (no RCPT yet…): the session goes on; closed (421, e.g. the hard error limit): it is over
        if (!(await expect('data', 'DATA'))) {
          if (c.closed) return;
          continue;
        }
        if (rng.chance(0.05)) {
          c.write(body(rng));
          return; // leave in the middle of the data
        }
        c.write(body(rng) + '\r\n.\r\n');
        stats.messages++;
        if (!(await expect('dataEnd', '<end of data>'))) return;
        continue;
      }
      if (roll < 0.22) {
        c.write('QUIT\r\n');
        await expect('quit', 'QUIT');
        return;
      }
      let line = roll < 0.65 ? validCommand(rng) : roll < 0.9 ? mutate(validCommand(rng), rng) : garbage(rng);
      line = line.replace(/[\r\n]/g, ' ');
      if (kindOf(line) === 'data' || kindOf(line) === 'quit') line = 'NOOP';
      c.write(line + '\r\n');
      stats.commands++;
      // a line over the command limit is cut with 421 whatever its verb
      if (!(await expect(line.length > 2048 ? 'junk' : kindOf(line), line))) return;
    }
  } finally {
    for (const f of c.faults) fault(f, '<stream>');
    c.destroy();
  }
}

test(`protocol fuzz: ${CLIENTS} clients for ${FUZZ_MS / 1000} s — well-formed, sensible replies; no process dies`, async (t) => {
  const stats: FuzzStats = { sessions: 0, commands: 0, messages: 0, replies: new Map() };
  const faults: string[] = [];
  const deadline = Date.now() + FUZZ_MS;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const rng = new Prng((seed + i * 0x9e3779b9) >>> 0);
      while (Date.now() < deadline && faults.length < 10) await fuzzSession(rng, stats, faults);
    }),
  );
  const codes = [...stats.replies.entries()].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${c}×${n}`).join(' ');
  t.diagnostic(`seed ${seed}: ${stats.sessions} sessions, ${stats.commands} commands, ${stats.messages} messages; replies ${codes}`);
  assert.deepEqual(faults, [], `FUZZ_SEED=${seed}`);
  assert.ok(stats.sessions > 50 && stats.commands > 500, `too little fuzzing: ${JSON.stringify({ ...stats, replies: codes })}`);

  // every process is the one that was there before: none died and was replaced
  const now = await mta.processes();
  const key = (rows: ProcessRow[]) => rows.filter((r) => ['watcher', 'dispatcher', 'smtp_server'].includes(r.role)).map((r) => `${r.role}:${r.pid}`).sort();
  assert.deepEqual(key(now), key(pidsBefore), `FUZZ_SEED=${seed}: the process set changed`);
  for (const r of pidsBefore) assert.ok(isAlive(r.pid), `${r.role} ${r.pid} alive (FUZZ_SEED=${seed})`);
});

test('after the fuzz a clean session is served and its message queued (E record in mail.log)', async () => {
  const c = await FuzzClient.open(mta.port, INTERNAL_CLIENT);
  try {
    const say = async (line: string, code: number) => {
      c.write(line + '\r\n');
      const r = await c.reply();
      assert.ok(Array.isArray(r), `${line}: ${String(r)}`);
      assert.equal(Number(r[r.length - 1]!.slice(0, 3)), code, `${line}: ${r.join(' | ')}`);
      return r;
    };
    const greeting = await c.reply();
    assert.ok(Array.isArray(greeting) && greeting[0]!.startsWith('220 '));
    await say('EHLO clean.example', 250);
    await say('MAIL FROM:<clean@client.test>', 250);
    await say('RCPT TO:<joe@localhost>', 250);
    await say('DATA', 354);
    const done = await say('Subject: after the fuzz\r\n\r\nstill here\r\n.', 250);
    const id = /queued as (\S+)/.exec(done.join(' '))?.[1];
    assert.ok(id, done.join(' '));
    await say('QUIT', 221);
    await waitFor(() => readMailLog(join(mta.root, 'log', 'mail.log')).some((r) => r.event === 'E' && r.id === id), { timeoutMs: 5000, what: `an E record for ${id}` });
  } finally {
    c.destroy();
  }
});
