// rspamd (Debian's, its proxy worker with `milter = yes`, started by the test with its own
// configuration) as the milter of a running instance's tcp_local channel (SPAMFILTER1_MILTER,
// sourcespamfilter1): a clean message from outside is delivered with rspamd's headers and our
// Authentication-Results; the GTUBE test string is refused at the end of DATA with rspamd's text,
// one J record naming the filter, counted in tsubame_rejections_total and on the status page;
// rspamd stopped in the middle of a transaction gives the configured 4xx (tempfail), nothing is
// lost (what was accepted before is delivered; the refused message stays with its client), and
// new clients are turned away with 421 until it is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance } from '../helpers/running-instance.js';
import { freePort, waitFor } from '../helpers/instance.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { startRspamd, type Rspamd } from '../helpers/rspamd.js';
import { GTUBE } from '../fixtures/milter/scenarios.js';
import { SmtpProbe } from './smtp-harness.js';
import { mailboxFiles, mailLog, startMta } from './job-controller-harness.js';

const SERVER = '127.0.18.1';
const CLIENT = '127.0.18.2';

let rspamd: Rspamd;
let dns: Dnsmasq;
let mta: MtaInstance;
let metricsPort: number;

before(async () => {
  rspamd = await startRspamd();
  // Every .test name answered (NXDOMAIN) on loopback: SPF and DMARC find nothing, quickly.
  dns = await startDnsmasq({ host: '127.0.16.58', lines: ['local=/test/'] });
  metricsPort = await freePort('127.0.0.1');
  mta = await MtaInstance.create({ address: SERVER, service: 'MIN_PROCS=1\nMAX_PROCS=1' });
  mta.inst.write('etc/imta.cnf', `! rspamd test\ndest.test  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp mx sourcespamfilter1\ntcp-daemon\n`);
  mta.inst.write(
    'etc/option.dat',
    [
      `INTERNAL_IP=${SERVER}/32`,
      'LOCAL_HOST=mx.tsubame.test',
      `DNS_SERVERS=${dns.server}`,
      `METRICS_PORT=${metricsPort}`,
      `SPAMFILTER1_MILTER={ inet:127.0.0.1:${rspamd.port}, name = rspamd }`,
      'MILTER_CONNECT_TIMEOUT=2',
      'MILTER_COMMAND_TIMEOUT=20',
      'MILTER_CONTENT_TIMEOUT=30',
      '',
    ].join('\n'),
  );
  mkdirSync(join(mta.root, 'mailbox', 'user', 'new'), { recursive: true });
  await startMta(mta);
});

after(async () => {
  await mta?.cleanup();
  await rspamd?.remove();
  await dns?.close();
});

const failWith = (what: unknown) => `${JSON.stringify(what)}\n--- rspamd log ---\n${rspamd.logTail()}`;

function message(subject: string, body: string): string {
  return `From: Sender <sender@origin.test>\r\nTo: user@dest.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@origin.test>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n${body}`;
}

/** E records so far (files may leave the queue meanwhile, as they are delivered; records stay). */
const enqueued = () => mailLog(mta).filter((r) => r.event === 'E').length;

async function open(): Promise<SmtpProbe> {
  const p = await SmtpProbe.connect(SERVER, mta.port, CLIENT);
  await p.hello('client.origin.test');
  return p;
}

/** MAIL, RCPT, DATA and the message on an open session; the final reply. */
async function transaction(p: SmtpProbe, subject: string, body: string): Promise<string> {
  assert.equal((await p.command('MAIL FROM:<sender@origin.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<user@dest.test>'))?.code, 250);
  assert.equal((await p.command('DATA'))?.code, 354);
  p.write(`${message(subject, body)}.\r\n`);
  return (await p.reply(60_000))!.text;
}

async function deliveredHeader(subject: string): Promise<string> {
  const file = await waitFor(() => mailboxFiles(mta, 'user').find((f) => readFileSync(f, 'latin1').includes(`Subject: ${subject}`)), { timeoutMs: 30_000, what: `"${subject}" delivered` });
  const text = readFileSync(file, 'latin1').replace(/\r\n/g, '\n');
  return text.slice(0, text.indexOf('\n\n') + 1).replace(/\n[ \t]+/g, ' ');
}

test('a clean message is delivered carrying rspamd’s headers, and our Authentication-Results', async () => {
  const p = await open();
  const reply = await transaction(p, 'clean-one', 'Hello,\r\n\r\nA perfectly ordinary message.\r\n');
  p.close();
  assert.match(reply, /^250 2\.0\.0 Ok: queued as /, failWith(reply));
  const header = await deliveredHeader('clean-one');
  assert.match(header, /\nX-Spamd-Result: default: False \[/, failWith(header));
  assert.match(header, /\nX-Spam-Status: No, score=/);
  assert.equal(header.match(/^Authentication-Results: mx\.tsubame\.test;/gm)?.length, 1, header);
});

test('GTUBE: refused at the end of DATA with rspamd’s reply, one J record naming the filter, counted in the metrics and on the status page', async () => {
  const queuedBefore = enqueued();
  const p = await open();
  const reply = await transaction(p, 'gtube', `Hello,\r\n\r\n${GTUBE}\r\n`);
  p.close();
  assert.equal(reply, '554 5.7.1 Gtube pattern', failWith(reply));
  const j = mailLog(mta).filter((r) => r.event === 'J');
  assert.deepEqual(j.map((r) => [r.recipient, r.status]), [['user@dest.test', 'milter:rspamd: 554 5.7.1 Gtube pattern']]);
  assert.equal(enqueued(), queuedBefore, 'nothing queued');
  const metrics = await waitFor(
    async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return /^tsubame_rejections_total\{reason="milter:rspamd"\} 1$/m.test(text) ? text : null;
    },
    { timeoutMs: 20_000, what: 'the refusal counted in /metrics' },
  );
  assert.match(metrics, /# TYPE tsubame_rejections_total counter/);
  const page = await (await fetch(`http://127.0.0.1:${metricsPort}/`)).text();
  assert.match(page, /<td class="reason">milter:rspamd<\/td><td class="n">1<\/td>/);
});

// Last: stops rspamd.
test('rspamd stopped in the middle of a transaction: 451 4.7.1 (MILTER_DEFAULT_ACTION tempfail), nothing lost, new clients 421', async () => {
  const p = await open();
  // One message through first, on the same session.
  assert.match(await transaction(p, 'before-the-stop', 'Delivered before rspamd goes away.\r\n'), /^250 /);
  assert.equal((await p.command('MAIL FROM:<sender@origin.test>'))?.code, 250);
  assert.equal((await p.command('RCPT TO:<user@dest.test>'))?.code, 250);
  await rspamd.stop('SIGKILL');
  const queued = enqueued();
  assert.equal((await p.command('DATA'))?.code, 354);
  p.write(`${message('during-the-stop', 'Sent while rspamd is gone.\r\n')}.\r\n`);
  const reply = (await p.reply(60_000))!.text;
  assert.equal(reply, '451 4.7.1 Service unavailable - try again later');
  p.close();
  assert.equal(enqueued(), queued, 'the refused message was not queued');
  const j = mailLog(mta).filter((r) => r.event === 'J' && r.status.startsWith('milter:rspamd: 451'));
  assert.equal(j.length, 1);
  assert.match(j[0]!.status, /^milter:rspamd: 451 4\.7\.1 Service unavailable - try again later \(default action: /);
  await deliveredHeader('before-the-stop');
  // A new client: the filter cannot be reached at connect.
  const next = await SmtpProbe.connect(SERVER, mta.port, CLIENT);
  const greeting = await next.reply(30_000);
  assert.equal(greeting?.text, '421 4.7.1 Service unavailable - try again later');
  next.close();
});
