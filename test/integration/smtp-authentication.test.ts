// SPF, DKIM, DMARC and ARC in real SMTP sessions of a running instance (start-msg), dnsmasq on
// loopback serving the SPF, DKIM key and DMARC records, clients outside INTERNAL_IP on their own
// loopback addresses: mail signed by python3-dkim's dkimsign is delivered to the mailbox with one
// Authentication-Results header of ours saying dkim=pass (a forged one claiming our authserv-id
// removed); an altered body, a wrong key and a missing key are delivered saying so; a DMARC
// p=reject forgery is refused at the end of DATA with 550 5.7.1, an SPF -all sender at MAIL, each
// with one J record naming DMARC or SPF, while a second service running as a channel with
// dmarchold / spffailh holds the same mail (250, queued held); a list's ARC-sealed forward
// verifies. Hostile: 1,000
// DKIM-Signature fields, an SPF record that includes itself, a DMARC record of 60 KiB (near the
// most one DNS message of 64 KiB can carry).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MtaInstance } from '../helpers/running-instance.js';
import { freePort, waitFor } from '../helpers/instance.js';
import { startDnsmasq, txtRecord, type Dnsmasq } from '../helpers/dnsmasq.js';
import { startDnsServer, type SimDns } from '../helpers/sim-internet.js';
import { SmtpProbe } from './smtp-harness.js';
import { mailboxFiles, mailLog, queueFiles, startMta } from './job-controller-harness.js';

const SERVER = '127.0.17.1';
const AUTHSERV = 'mx.tsubame.test';
const ORIGIN_IP = '127.0.17.10';
const LIST_IP = '127.0.17.20';
const FORGER_IP = '127.0.17.66';

const IMTA = `! authentication test
dest.test            $U%$D@localhost
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon

tcp_hold smtp mx dmarchold spffailh
tcp_hold-daemon
`;

let dns: Dnsmasq;
let bigDns: SimDns;
let dir: string;
let mta: MtaInstance;
/** The port of [SERVICE=SMTP_HOLD], which runs as tcp_hold (dmarchold, spffailh); mta.port runs as tcp_local. */
let holdPort: number;
const keyFile: Record<string, string> = {};

function rsaKey(name: string): string {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  keyFile[name] = join(dir, `${name}.pem`);
  writeFileSync(keyFile[name], privateKey.export({ type: 'pkcs1', format: 'pem' }));
  return `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsubame-smtp-auth-'));
  const origin = rsaKey('origin');
  const other = rsaKey('other');
  const list = rsaKey('list');
  bigDns = await startDnsServer({ host: '127.0.16.57', records: { '_dmarc.big.test': { txt: [`v=DMARC1; p=reject; rua=mailto:${'r'.repeat(60 * 1024)}@big.test`] } } });
  dns = await startDnsmasq({
    host: '127.0.16.56',
    lines: [
      'local=/test/',
      txtRecord('origin.test', `v=spf1 ip4:${ORIGIN_IP} -all`),
      txtRecord('sel._domainkey.origin.test', origin),
      txtRecord('wrong._domainkey.origin.test', other),
      txtRecord('_dmarc.origin.test', 'v=DMARC1; p=reject'),
      txtRecord('list.test', `v=spf1 ip4:${LIST_IP} -all`),
      txtRecord('arc._domainkey.list.test', list),
      txtRecord('loop.test', 'v=spf1 include:loop.test -all'),
      `server=/big.test/${bigDns.host}#${bigDns.port}`,
    ],
  });
  holdPort = await freePort(SERVER);
  mta = await MtaInstance.create({ address: SERVER, service: `MIN_PROCS=1\nMAX_PROCS=1\n\n[SERVICE=SMTP_HOLD]\nPORT=${holdPort}\nINTERFACE_ADDRESS=${SERVER}\nPARAMETER=CHANNEL=tcp_hold\nMIN_PROCS=1\nMAX_PROCS=1` });
  mta.inst.write('etc/imta.cnf', IMTA);
  mta.inst.write('etc/option.dat', `INTERNAL_IP=${SERVER}/32\nLOCAL_HOST=${AUTHSERV}\nDNS_SERVERS=${dns.server}\nDNS_TIMEOUT=3\nDNS_ATTEMPTS=1\nARC_TRUSTED_SEALERS=list.test\n`);
  mkdirSync(join(mta.root, 'mailbox', 'rcpt', 'new'), { recursive: true });
  await startMta(mta);
});

after(async () => {
  await mta?.cleanup();
  await dns?.close();
  await bigDns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function message(from: string, subject: string, body = 'Hello from the origin.\r\n', extra = ''): Buffer {
  return Buffer.from(`${extra}From: Sender <${from}>\r\nTo: rcpt@dest.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@origin.test>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n${body}`);
}

function run(program: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(program, args, { encoding: 'buffer', timeout: 20_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${program}: ${err.message} ${stderr.toString().slice(-300)}`));
      else resolve(stdout);
    });
    child.stdin!.end(input);
  });
}

const dkimsign = (selector: string, key: string, msg: Buffer) => run('/usr/bin/dkimsign', ['--bcanon', 'relaxed', selector, 'origin.test', keyFile[key]!], msg);

interface Sent {
  mail: string;
  rcpt: string;
  data: string | null;
  ms: number;
}

/** One transaction from `ip`: MAIL, RCPT rcpt@dest.test, and the message when both were taken. */
async function send(ip: string, mailFrom: string, msg: Buffer, helo = 'client.test', port = mta.port): Promise<Sent> {
  const started = Date.now();
  const p = await SmtpProbe.connect(SERVER, port, ip);
  try {
    await p.hello(helo);
    const mail = (await p.command(`MAIL FROM:<${mailFrom}>`))!.text;
    const rcpt = mail.startsWith('250') ? (await p.command('RCPT TO:<rcpt@dest.test>'))!.text : '';
    let data: string | null = null;
    if (rcpt.startsWith('250')) {
      assert.equal((await p.command('DATA'))?.code, 354);
      const text = msg.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
      p.write(`${text}${text.endsWith('\r\n') ? '' : '\r\n'}.\r\n`);
      data = (await p.reply(30_000))!.text;
    }
    await p.command('QUIT').catch(() => null);
    return { mail, rcpt, data, ms: Date.now() - started };
  } finally {
    p.close();
  }
}

/** A queue file's text, '' when it was delivered (removed) meanwhile. */
function readIfThere(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}

/** The delivered message whose Subject is `subject`: its header section as text. */
async function delivered(subject: string): Promise<string> {
  const file = await waitFor(() => mailboxFiles(mta, 'rcpt').find((f) => readFileSync(f, 'latin1').includes(`\r\nSubject: ${subject}\r\n`) || readFileSync(f, 'latin1').includes(`\nSubject: ${subject}\n`)), {
    timeoutMs: 30_000,
    what: `the message "${subject}" in the mailbox`,
  });
  const text = readFileSync(file, 'latin1').replace(/\r\n/g, '\n');
  return text.slice(0, text.indexOf('\n\n') + 1);
}

/** Our Authentication-Results fields in a header section, unfolded. */
function ours(header: string): string[] {
  const fields = header.replace(/\n[ \t]+/g, ' ').split('\n');
  return fields.filter((f) => /^Authentication-Results:\s*mx\.tsubame\.test;/i.test(f));
}

test('signed by dkimsign from an SPF-allowed client: delivered with one Authentication-Results of ours, dkim, spf and dmarc pass; a forged one is gone', async () => {
  const forged = `Authentication-Results: ${AUTHSERV}; dkim=pass header.d=bank.test\r\nAuthentication-Results: mx.other.test; spf=fail\r\n`;
  const signed = await dkimsign('sel', 'origin', message('a@origin.test', 'signed-pass', undefined, forged));
  const r = await send(ORIGIN_IP, 'a@origin.test', signed, 'mail.origin.test');
  assert.match(r.data ?? '', /^250 /, JSON.stringify(r));
  const header = await delivered('signed-pass');
  const ar = ours(header);
  assert.equal(ar.length, 1, header);
  assert.match(ar[0]!, /dkim=pass header\.i=@origin\.test header\.s=sel /);
  assert.match(ar[0]!, /spf=pass \(mx\.tsubame\.test: domain of a@origin\.test designates 127\.0\.17\.10 as permitted sender\) smtp\.mailfrom=a@origin\.test/);
  assert.match(ar[0]!, /dmarc=pass \(p=REJECT\) header\.from=origin\.test/);
  assert.ok(!header.includes('header.d=bank.test'), 'the forged header claiming our authserv-id was removed');
  assert.ok(header.includes('Authentication-Results: mx.other.test; spf=fail'), 'another host’s header is kept');
  // Ours is on top, above our Received: line.
  assert.match(header, /^Return-Path: .*\nDelivered-To: .*\nAuthentication-Results: mx\.tsubame\.test;[^]*?\nReceived: from mail\.origin\.test \(\[127\.0\.17\.10\]\)/);
});

test('altered body, wrong key, missing key: delivered (DMARC passes through SPF), the header says dkim did not pass', async () => {
  const altered = Buffer.concat([await dkimsign('sel', 'origin', message('a@origin.test', 'altered')), Buffer.from('A line added on the way.\r\n')]);
  const wrong = await dkimsign('wrong', 'origin', message('a@origin.test', 'wrong-key'));
  const missing = await dkimsign('nokey', 'origin', message('a@origin.test', 'missing-key'));
  for (const m of [altered, wrong, missing]) assert.match((await send(ORIGIN_IP, 'a@origin.test', m)).data ?? '', /^250 /);
  assert.match(ours(await delivered('altered'))[0]!, /dkim=neutral \(body hash did not verify\)/);
  assert.match(ours(await delivered('wrong-key'))[0]!, /dkim=fail \(bad signature\)/);
  assert.match(ours(await delivered('missing-key'))[0]!, /dkim=neutral \(no key\)/);
});

test('a DMARC p=reject forgery: refused at the end of DATA with 550 5.7.1, one J record naming DMARC, nothing queued', async () => {
  const r = await send(FORGER_IP, 'bounce@evil.test', message('ceo@origin.test', 'forgery', 'Please pay the invoice.\r\n'));
  assert.equal(r.mail.slice(0, 3), '250');
  assert.equal(r.data, '550 5.7.1 message refused: origin.test publishes a DMARC policy of reject and the message fails it');
  const j = mailLog(mta).filter((x) => x.event === 'J' && x.status.startsWith('DMARC:'));
  assert.deepEqual(j.map((x) => [x.recipient, x.from, x.status]), [['rcpt@dest.test', 'bounce@evil.test', `DMARC: ${r.data}`]]);
  // nothing queued: no E record for it, no queue file holding it
  assert.deepEqual(mailLog(mta).filter((x) => x.event === 'E' && x.from === 'bounce@evil.test'), []);
  assert.ok(!queueFiles(mta).some((f) => readIfThere(f).includes('Subject: forgery')));
});

test('SPF -all: the forger’s MAIL FROM refused with 550 5.7.23, one J record naming SPF', async () => {
  const r = await send(FORGER_IP, 'ceo@origin.test', message('ceo@origin.test', 'spf-fail'));
  assert.equal(r.mail, '550 5.7.23 SPF fail: origin.test does not allow 127.0.17.66 to send its mail');
  const j = mailLog(mta).filter((x) => x.event === 'J' && x.status.startsWith('SPF:'));
  assert.deepEqual(j.map((x) => [x.from, x.recipient, x.status]), [['ceo@origin.test', '', `SPF: ${r.mail}`]]);
});

test('ARC: a list’s sealed forward (its footer broke the origin’s signature) verifies arc=pass and is delivered: its sealer is trusted', async () => {
  const signed = await dkimsign('sel', 'origin', message('a@origin.test', 'arc-forward', 'Original text.\r\n'));
  const changed = Buffer.concat([Buffer.from('Authentication-Results: mx.list.test; dkim=pass header.d=origin.test; spf=pass smtp.mailfrom=a@origin.test\r\n'), signed, Buffer.from('-- \r\nThe list footer\r\n')]);
  const sealed = await run('/usr/bin/arcsign', ['arc', 'list.test', keyFile.list!, 'mx.list.test'], changed);
  const r = await send(LIST_IP, 'bounce@list.test', sealed, 'mx.list.test');
  assert.match(r.data ?? '', /^250 /, JSON.stringify(r));
  const ar = ours(await delivered('arc-forward'))[0]!;
  assert.match(ar, /arc=pass \(i=1 spf=pass dkim=pass\)/);
  assert.match(ar, /dmarc=fail \(p=REJECT arc=pass\) header\.from=origin\.test/);
});

test('hostile: 1,000 DKIM-Signature fields, a self-including SPF record, a DMARC record of 60 KiB: bounded, answered', async () => {
  const body = 'Body of the flood.\r\n';
  const bh = createHash('sha256').update(body).digest('base64');
  const flood = Array.from({ length: 1000 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d${i}.flood.test; s=s${i}; h=from:to:subject; bh=${bh}; b=${Buffer.from(`sig${i}`).toString('base64')}\r\n`).join('');
  const f = await send(FORGER_IP, 'a@flood.test', message('a@flood.test', 'flood', body, flood));
  assert.match(f.data ?? '', /^250 /);
  assert.ok(f.ms < 15_000, `${f.ms} ms`);
  assert.match(ours(await delivered('flood'))[0]!, /\(990 more DKIM signatures not checked: DKIM_MAX_SIGNATURES=10\)/);

  const loop = await send(FORGER_IP, 'a@loop.test', message('a@loop.test', 'spf-loop'));
  assert.match(loop.data ?? '', /^250 /, 'permerror is accepted by default');
  assert.ok(loop.ms < 15_000, `${loop.ms} ms`);
  assert.match(ours(await delivered('spf-loop'))[0]!, /spf=permerror/);

  const big = await send(FORGER_IP, 'a@evil.test', message('ceo@big.test', 'big-dmarc'));
  assert.ok(bigDns.queries.some((q) => q.name === '_dmarc.big.test' && q.transport === 'tcp'), 'the record came whole, over TCP');
  assert.equal(big.data, '550 5.7.1 message refused: big.test publishes a DMARC policy of reject and the message fails it');
  assert.ok(big.ms < 15_000, `${big.ms} ms`);
});

/** The one queue file of message `id` in the l channel, which must be held; its E record's status. */
function heldAs(data: string | null): string {
  const id = /queued as (\S+)/.exec(data ?? '')?.[1];
  assert.ok(id, String(data));
  const held = queueFiles(mta, 'l').filter((f) => f.includes(id));
  assert.equal(held.length, 1);
  assert.ok(held[0]!.endsWith('.HELD'), held[0]);
  const e = mailLog(mta).filter((x) => x.event === 'E' && x.id === id);
  assert.deepEqual(e.map((x) => x.source), ['tcp_hold']);
  return e[0]!.status;
}

test('per channel: with option.dat at refuse, tcp_hold (dmarchold, spffailh) holds the DMARC forgery and the SPF -all sender that tcp_local refuses', async () => {
  const forgery = () => message('ceo@origin.test', `forgery-per-channel-${Date.now()}`, 'Please pay the invoice.\r\n');
  const refused = await send(FORGER_IP, 'bounce@evil.test', forgery());
  assert.equal(refused.data, '550 5.7.1 message refused: origin.test publishes a DMARC policy of reject and the message fails it');
  const held = await send(FORGER_IP, 'bounce@evil.test', forgery(), 'client.test', holdPort);
  assert.match(held.data ?? '', /^250 /, JSON.stringify(held));
  assert.equal(heldAs(held.data), 'queued held (DMARC fail for origin.test (p=reject): held (dmarchold))');

  // list.test publishes -all and no DMARC record: only SPF decides.
  const spfRefused = await send(FORGER_IP, 'bounce@list.test', message('bounce@list.test', 'spf-per-channel-refused'));
  assert.equal(spfRefused.mail, '550 5.7.23 SPF fail: list.test does not allow 127.0.17.66 to send its mail');
  const spfHeld = await send(FORGER_IP, 'bounce@list.test', message('bounce@list.test', 'spf-per-channel-held'), 'client.test', holdPort);
  assert.equal(spfHeld.mail.slice(0, 3), '250', 'no message to hold at MAIL: taken, held at the end of DATA');
  assert.match(spfHeld.data ?? '', /^250 /, JSON.stringify(spfHeld));
  assert.equal(heldAs(spfHeld.data), 'queued held (SPF fail for MAIL FROM list.test from 127.0.17.66: held (spffailh))');
});

// Last: changes the configuration.
test('DMARC_REJECT_ACTION=hold (applied by a reload): the forgery is accepted and queued held, its E record saying why', async () => {
  mta.inst.write('etc/option.dat', `${mta.inst.read('etc/option.dat')}DMARC_REJECT_ACTION=hold\n`);
  const reload = await mta.imsimta(['reload']);
  assert.equal(reload.code, 0, reload.stderr);
  // New sessions get the new configuration once the server process has rebuilt its service.
  const r = await waitFor(
    async () => {
      const sent = await send(FORGER_IP, 'bounce@evil.test', message('ceo@origin.test', `held-${Date.now()}`, 'Please pay the invoice.\r\n'));
      return sent.data?.startsWith('250') ? sent : null;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'the forgery accepted for holding' },
  );
  const id = /queued as (\S+)/.exec(r.data!)![1]!;
  const held = queueFiles(mta, 'l').filter((f) => f.includes(id));
  assert.equal(held.length, 1);
  assert.ok(held[0]!.endsWith('.HELD'), held[0]);
  const e = mailLog(mta).find((x) => x.event === 'E' && x.id === id)!;
  assert.equal(e.status, 'queued held (DMARC fail for origin.test (p=reject): held)');
});
