// ETRN in the SMTP service, against a stand-in job controller on the instance's socket: the
// hook into smtp-server (handler_ETRN dispatch and the EHLO keyword — an upgrade of the
// library that breaks either fails here), the order of pipelined replies, every reply code,
// the forms of the argument, and ETRN_ALLOW.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { makeInstance, freePort, waitFor, type TestInstance } from '../helpers/instance.js';
import { SmtpProbe } from './smtp-harness.js';
import { createSmtpService, type SmtpService } from '../../src/smtp-server/service.js';
import { TsubameConnection } from '../../src/smtp-server/connection.js';
import { serveJsonSocket, type JsonObject } from '../../src/common/ipc-socket.js';
import { instancePaths } from '../../src/common/instance.js';
import { silentLogger } from '../../src/common/logger.js';

const SERVER = '127.0.10.1';
const ALLOWED = '127.0.10.2';
const OUTSIDER = '127.0.10.3';

let inst: TestInstance;
let port: number;
let service: SmtpService;
let listener: net.Server;
let jc: net.Server | null = null;
/** Requests the stand-in job controller got, and what it answers next. */
const requests: JsonObject[] = [];
let answer: JsonObject = { ok: true, code: 250, count: 1, text: '' };
let answerDelayMs = 0;

async function startJobController(): Promise<void> {
  jc = await serveJsonSocket(instancePaths(inst.root).jobControllerSocket, async (req) => {
    requests.push(req);
    if (answerDelayMs > 0) await new Promise((r) => setTimeout(r, answerDelayMs));
    return answer;
  });
}

async function stopJobController(): Promise<void> {
  const server = jc;
  jc = null;
  if (server) await new Promise<void>((r) => server.close(() => r()));
}

before(async () => {
  port = await freePort(SERVER);
  inst = makeInstance({
    files: {
      'etc/imta.cnf': `localhost $U%localhost@localhost\n. $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp mx\ntcp-daemon\n`,
      'etc/dispatcher.cnf': `[SERVICE=SMTP]\nPORT=${port}\nINTERFACE_ADDRESS=${SERVER}\n`,
      'etc/option.dat': `INTERNAL_IP=127.0.10.0/24\nLOCAL_HOST=mx.etrn.test\nETRN_ALLOW=${ALLOWED}/32\n`,
    },
  });
  service = await createSmtpService({ root: inst.root, service: 'SMTP', logger: silentLogger() });
  listener = net.createServer({ pauseOnConnect: true }, (socket) => service.handle(socket));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, SERVER, () => resolve());
  });
  await startJobController();
});

after(async () => {
  await stopJobController();
  await new Promise<void>((r) => listener?.close(() => r()));
  await service?.close(200);
  inst?.remove();
});

async function session(from = ALLOWED): Promise<SmtpProbe> {
  const probe = await SmtpProbe.connect(SERVER, port, from);
  await probe.hello('client.etrn.test');
  return probe;
}

test('hook: smtp-server dispatches verbs to handler_<VERB> methods and TsubameConnection has handler_ETRN', () => {
  // What connection.ts relies on in the pinned library (smtp-server 3.21.6).
  assert.equal(typeof SMTPConnection.prototype._getHandler, 'function');
  assert.equal(SMTPConnection.prototype._getHandler.call(TsubameConnection.prototype as unknown as SMTPConnection, 'ETRN'), TsubameConnection.prototype.handler_ETRN);
  assert.equal(typeof SMTPConnection.prototype.handler_EHLO, 'function');
});

test('EHLO advertises ETRN; HELO works too', async () => {
  const probe = await SmtpProbe.connect(SERVER, port, ALLOWED);
  try {
    assert.equal((await probe.reply())?.code, 220);
    const ehlo = await probe.command('EHLO client.etrn.test');
    assert.equal(ehlo?.code, 250);
    assert.ok(ehlo.lines.some((l) => /^250[- ]ETRN$/.test(l)), ehlo.text);
    assert.ok(ehlo.lines.some((l) => /^250[- ]PIPELINING$/.test(l)), 'the library keywords are still there');
    assert.match(ehlo.lines[ehlo.lines.length - 1]!, /^250 /, 'the keyword list still ends with "250 "');
    const helo = await probe.command('HELO client.etrn.test');
    assert.equal(helo?.code, 250);
    answer = { ok: true, code: 251, count: 0, text: 'no messages waiting' };
    assert.equal((await probe.command('ETRN quiet.test'))?.code, 251, 'after HELO too');
  } finally {
    probe.close();
  }
});

test('ETRN before HELO/EHLO is 503 and the job controller is not asked', async () => {
  const before = requests.length;
  const probe = await SmtpProbe.connect(SERVER, port, ALLOWED);
  try {
    assert.equal((await probe.reply())?.code, 220);
    const r = await probe.command('ETRN customer.test');
    assert.equal(r?.code, 503, r?.text);
    assert.equal(requests.length, before);
  } finally {
    probe.close();
  }
});

test('each outcome of the job controller gets its RFC 1985 reply', async () => {
  const probe = await session();
  try {
    const cases: Array<[JsonObject, RegExp]> = [
      [{ ok: true, code: 250, count: 3, text: '3 messages' }, /^250 2\.0\.0 Queuing for node customer\.test started$/],
      [{ ok: true, code: 251, count: 0, text: 'none' }, /^251 2\.0\.0 OK, no messages waiting for node customer\.test$/],
      [{ ok: true, code: 252, count: 0, text: 'slow' }, /^252 2\.0\.0 OK, pending messages for node customer\.test started$/],
      [{ ok: true, code: 253, count: 7, text: 'slow' }, /^253 2\.0\.0 OK, 7 pending messages for node customer\.test started$/],
      [{ ok: false, code: 501, count: 0, text: 'bad' }, /^501 5\.5\.4 /],
      [{ ok: false, error: 'something broke' }, /^458 4\.3\.0 Unable to queue messages for node customer\.test$/],
      [{ ok: false, code: 459, count: 0, text: 'not fast flush', reason: 'service unavailable' }, /^459 4\.3\.0 <customer\.test>: service unavailable$/],
      [{ ok: false, code: 458, count: 0, text: 'rate', reason: 'too many ETRN requests, try again later' }, /^458 4\.7\.0 Unable to queue messages for node customer\.test: too many ETRN requests, try again later$/],
    ];
    for (const [reply, expected] of cases) {
      answer = reply;
      const r = await probe.command('ETRN customer.test');
      assert.match(r!.text, expected, JSON.stringify(reply));
    }
    // Marked as ETRN, with the client's address (the job controller's rate limit and fast-flush-only rule).
    assert.deepEqual(requests[requests.length - 1], { op: 'flush', target: 'customer.test', origin: 'etrn', client: ALLOWED });
  } finally {
    probe.close();
  }
});

test('the forms: domain (case and trailing dot dropped), @domain, #queue', async () => {
  answer = { ok: true, code: 250, count: 1, text: '' };
  const probe = await session();
  try {
    const before = requests.length;
    assert.equal((await probe.command('ETRN Customer.TEST.'))?.code, 250);
    assert.equal((await probe.command('etrn @Customer.test'))?.code, 250);
    assert.equal((await probe.command('ETRN #tcp_local'))?.code, 250);
    assert.deepEqual(
      requests.slice(before).map((r) => r.target),
      ['customer.test', '@customer.test', '#tcp_local'],
    );
  } finally {
    probe.close();
  }
});

test('bad or missing arguments are 501 and never reach the job controller; they do not count as unknown commands', async () => {
  const probe = await session();
  try {
    const before = requests.length;
    for (const line of ['ETRN', 'ETRN ', 'ETRN a.test b.test', 'ETRN bad..domain', 'ETRN -x.test', 'ETRN #', 'ETRN #bad!queue', 'ETRN @', `ETRN ${'a'.repeat(300)}.test`]) {
      const r = await probe.command(line);
      assert.equal(r?.code, 501, `${line}: ${r?.text}`);
    }
    assert.equal(requests.length, before);
    // Nine refusals did not use up the MAX_BAD_COMMANDS (10) allowance: the session goes on.
    assert.equal((await probe.command('NOOP'))?.code, 250);
  } finally {
    probe.close();
  }
});

test('ETRN inside a mail transaction is 503', async () => {
  const probe = await session();
  try {
    assert.equal((await probe.command('MAIL FROM:<a@client.etrn.test>'))?.code, 250);
    assert.equal((await probe.command('ETRN customer.test'))?.code, 503);
    assert.equal((await probe.command('RSET'))?.code, 250);
    answer = { ok: true, code: 250, count: 1, text: '' };
    assert.equal((await probe.command('ETRN customer.test'))?.code, 250);
  } finally {
    probe.close();
  }
});

test('ETRN_ALLOW: a client outside it gets 459 and the job controller is not asked', async () => {
  const before = requests.length;
  const probe = await session(OUTSIDER);
  try {
    const r = await probe.command('ETRN customer.test');
    assert.match(r!.text, /^459 4\.7\.1 Node customer\.test not allowed: /);
    assert.equal(requests.length, before);
  } finally {
    probe.close();
  }
});

test('pipelined commands behind ETRN are answered after it, in order', async () => {
  answer = { ok: true, code: 253, count: 2, text: '' };
  answerDelayMs = 150;
  const probe = await SmtpProbe.connect(SERVER, port, ALLOWED);
  try {
    assert.equal((await probe.reply())?.code, 220);
    probe.write('EHLO client.etrn.test\r\nETRN customer.test\r\nNOOP\r\nQUIT\r\n');
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await probe.reply())!.code);
    assert.deepEqual(codes, [250, 253, 250, 221]);
  } finally {
    answerDelayMs = 0;
    probe.close();
  }
});

test('the job controller not running: 458', async () => {
  await stopJobController();
  try {
    const probe = await session();
    try {
      const r = await probe.command('ETRN customer.test');
      assert.match(r!.text, /^458 4\.3\.0 Unable to queue messages for node customer\.test$/);
    } finally {
      probe.close();
    }
  } finally {
    await startJobController();
  }
  await waitFor(() => jc !== null);
});
