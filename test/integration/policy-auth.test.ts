// SPF, DKIM, DMARC and ARC verification against real peers: dnsmasq on loopback serving the SPF,
// DKIM key and DMARC records; messages signed by an independent signer (python3-dkim's dkimsign,
// arcsign for the forwarder's ARC set). Pass, altered body, wrong key, missing key, a DMARC
// p=reject forgery, SPF -all at MAIL, an ARC-sealed forward; and hostile input: 1,000
// DKIM-Signature fields, an SPF record that includes itself, a DMARC record of 60 KiB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DnsCache } from '../../src/dns/cache.js';
import { createDnsLookup } from '../../src/dns/settings.js';
import type { RrsetLookup } from '../../src/dns/lookup.js';
import { authSettings } from '../../src/policy/auth-settings.js';
import { checkSpf, verifyMessage } from '../../src/policy/auth-verify.js';
import { spfDecision } from '../../src/policy/auth-decision.js';
import { removeOwnAuthResults } from '../../src/policy/auth-results.js';
import { startDnsmasq, txtRecord, type Dnsmasq } from '../helpers/dnsmasq.js';
import { startDnsServer, type SimDns } from '../helpers/sim-internet.js';

const AUTHSERV = 'mx.tsubame.test';
const ORIGIN_IP = '127.0.0.10';
const LIST_IP = '127.0.0.20';
const FORGER_IP = '127.0.0.66';

let dns: Dnsmasq;
let bigDns: SimDns;
let dir: string;
let lookup: RrsetLookup;
const keyFile: Record<string, string> = {};

function rsaKey(name: string): string {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  keyFile[name] = join(dir, `${name}.pem`);
  writeFileSync(keyFile[name], privateKey.export({ type: 'pkcs1', format: 'pem' }));
  return `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsubame-auth-'));
  const origin = rsaKey('origin');
  const other = rsaKey('other');
  const list = rsaKey('list');
  bigDns = await startDnsServer({
    host: '127.0.16.55',
    records: { '_dmarc.big.test': { txt: [`v=DMARC1; p=reject; rua=mailto:${'r'.repeat(60 * 1024)}@big.test`] } },
  });
  dns = await startDnsmasq({
    host: '127.0.16.53',
    lines: [
      'local=/test/',
      txtRecord('origin.test', `v=spf1 ip4:${ORIGIN_IP} -all`),
      txtRecord('sel._domainkey.origin.test', origin),
      txtRecord('wrong._domainkey.origin.test', other),
      txtRecord('_dmarc.origin.test', 'v=DMARC1; p=reject'),
      txtRecord('list.test', `v=spf1 ip4:${LIST_IP} -all`),
      txtRecord('arc._domainkey.list.test', list),
      txtRecord('loop.test', 'v=spf1 include:loop.test -all'),
      txtRecord('soft.test', `v=spf1 ip4:${ORIGIN_IP} ~all`),
      `server=/big.test/${bigDns.host}#${bigDns.port}`,
    ],
  });
  lookup = createDnsLookup({ raw: { DNS_TIMEOUT: '2', DNS_ATTEMPTS: '1' }, dnsServers: [dns.server] }, new DnsCache(10_000), 1024);
});

after(async () => {
  lookup?.client.close();
  await dns?.close();
  await bigDns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const settings = (raw: Record<string, string> = {}, keywords: Record<string, string[]> = {}) => authSettings({ raw, localHost: AUTHSERV }, { keywords });

function message(from: string, body = 'Hello from the origin.\r\n', extra = ''): Buffer {
  return Buffer.from(`${extra}From: Sender <${from}>\r\nTo: rcpt@dest.test\r\nSubject: test\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@origin.test>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n${body}`);
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

const dkimsign = (selector: string, domain: string, key: string, msg: Buffer) => run('/usr/bin/dkimsign', ['--bcanon', 'relaxed', selector, domain, keyFile[key]!], msg);

test('a message signed by dkimsign from an SPF-allowed client: spf, dkim and dmarc pass; one Authentication-Results header with our authserv-id', async () => {
  const signed = await dkimsign('sel', 'origin.test', 'origin', message('a@origin.test'));
  const v = await verifyMessage(lookup, { ip: ORIGIN_IP, helo: 'mail.origin.test', mailFrom: 'a@origin.test', message: signed }, settings());
  assert.deepEqual(
    [v.spf?.result, v.dkim.map((d) => [d.result, d.domain, d.selector, d.aligned]), v.dmarc?.result, v.dmarc?.policy, v.arc?.result],
    ['pass', [['pass', 'origin.test', 'sel', 'origin.test']], 'pass', 'reject', 'none'],
  );
  assert.equal(v.decision.action, 'accept');
  assert.match(v.authResultsHeader, /^Authentication-Results: mx\.tsubame\.test;\r\n\tdkim=pass header\.i=@origin\.test header\.s=sel /);
  assert.match(v.authResultsHeader, /;\r\n\tspf=pass \(mx\.tsubame\.test: domain of a@origin\.test designates 127\.0\.0\.10 as permitted sender\) smtp\.mailfrom=a@origin\.test/);
  assert.match(v.authResultsHeader, /;\r\n\tdmarc=pass \(p=REJECT\) header\.from=origin\.test;\r\n\tarc=none$/);
  assert.equal(v.authResultsHeader.match(/Authentication-Results:/g)!.length, 1);
  // The same message as a stream gives the same results.
  const streamed = await verifyMessage(lookup, { ip: ORIGIN_IP, helo: 'mail.origin.test', mailFrom: 'a@origin.test', message: Readable.from([signed.subarray(0, 100), signed.subarray(100)]) }, settings());
  assert.equal(streamed.authResultsHeader, v.authResultsHeader);
});

test('altered body, wrong key and missing key do not pass', async () => {
  const signed = await dkimsign('sel', 'origin.test', 'origin', message('a@origin.test'));
  const altered = Buffer.concat([signed, Buffer.from('A line added on the way.\r\n')]);
  const params = { ip: ORIGIN_IP, helo: 'mail.origin.test', mailFrom: 'a@origin.test' };
  const a = await verifyMessage(lookup, { ...params, message: altered }, settings());
  assert.deepEqual([a.dkim[0]!.result, a.dkim[0]!.comment], ['neutral', 'body hash did not verify']);
  const wrongKey = await dkimsign('wrong', 'origin.test', 'origin', message('a@origin.test'));
  const w = await verifyMessage(lookup, { ...params, message: wrongKey }, settings());
  assert.deepEqual([w.dkim[0]!.result, w.dkim[0]!.comment], ['fail', 'bad signature']);
  const noKey = await dkimsign('nokey', 'origin.test', 'origin', message('a@origin.test'));
  const n = await verifyMessage(lookup, { ...params, message: noKey }, settings());
  assert.deepEqual([n.dkim[0]!.result, n.dkim[0]!.comment], ['neutral', 'no key']);
  // SPF still passes for all three, so DMARC passes through SPF alignment: accepted.
  assert.deepEqual([a, w, n].map((x) => [x.dmarc?.result, x.decision.action]), [['pass', 'accept'], ['pass', 'accept'], ['pass', 'accept']]);
});

test('a DMARC p=reject forgery is refused at the end of DATA with 550 5.7.1 (or held, or accepted, as DMARC_REJECT_ACTION says)', async () => {
  const forged = message('ceo@origin.test', 'Please pay the invoice.\r\n');
  const params = { ip: FORGER_IP, helo: 'forger.evil.test', mailFrom: 'bounce@evil.test', message: forged };
  const v = await verifyMessage(lookup, params, settings());
  assert.deepEqual([v.spf?.result, v.dkim[0]?.result, v.dmarc?.result, v.dmarc?.policy], ['none', 'none', 'fail', 'reject']);
  assert.equal(v.decision.action, 'refuse');
  assert.equal(v.decision.reply, '550 5.7.1 message refused: origin.test publishes a DMARC policy of reject and the message fails it');
  assert.match(v.decision.reason!, /DMARC fail for origin\.test \(p=reject\): refused/);
  assert.match(v.authResultsHeader, /dmarc=fail \(p=REJECT\) header\.from=origin\.test/);
  assert.equal((await verifyMessage(lookup, params, settings({ DMARC_REJECT_ACTION: 'hold' }))).decision.action, 'hold');
  assert.equal((await verifyMessage(lookup, params, settings({ DMARC_REJECT_ACTION: 'accept' }))).decision.action, 'accept');
});

test('SPF -all: refused at MAIL with 550 5.7.23 by default; SPF_SMTP_STATUS_FAIL=2 accepts; spfdata refuses at the end of DATA only when DMARC does not pass', async () => {
  const spf = await checkSpf(lookup, { ip: FORGER_IP, helo: 'forger.evil.test', mailFrom: 'ceo@origin.test' }, settings());
  assert.equal(spf.result, 'fail');
  const atMail = spfDecision(spf, settings().spf, 'mail');
  assert.equal(atMail.reply, '550 5.7.23 SPF fail: origin.test does not allow 127.0.0.66 to send its mail');
  assert.equal(spfDecision(spf, settings({ SPF_SMTP_STATUS_FAIL: '2' }).spf, 'mail').action, 'accept');
  assert.equal(spfDecision(spf, settings({ SPF_SMTP_STATUS_FAIL: '4' }).spf, 'mail').reply?.slice(0, 13), '451 4.7.23 SP');
  assert.equal(spfDecision(spf, settings({}, { spfrcptto: [] }).spf, 'mail').action, 'accept', 'spfrcptto: not at MAIL');
  assert.equal(spfDecision(spf, settings({}, { spfrcptto: [] }).spf, 'rcpt').action, 'refuse', 'but at RCPT');
  assert.equal(spfDecision(spf, settings({}, { spfnone: [] }).spf, 'mail').action, 'accept');
  const spfdata = settings({}, { spfdata: [] });
  assert.equal(spfDecision(spf, spfdata.spf, 'mail').action, 'accept');
  // At the end of DATA: a forged, unsigned message is refused for SPF …
  const unsigned = await verifyMessage(lookup, { ip: FORGER_IP, helo: 'x', mailFrom: 'ceo@origin.test', message: message('ceo@origin.test'), spf }, spfdata);
  assert.equal(unsigned.decision.reply?.slice(0, 10), '550 5.7.23');
  // … a message whose aligned DKIM signature passes (a forward) is not.
  const signed = await dkimsign('sel', 'origin.test', 'origin', message('a@origin.test'));
  const forwarded = await verifyMessage(lookup, { ip: FORGER_IP, helo: 'x', mailFrom: 'a@origin.test', message: signed, spf }, spfdata);
  assert.deepEqual([forwarded.dmarc?.result, forwarded.decision.action], ['pass', 'accept']);
  assert.match(forwarded.decision.reason!, /SPF fail .*: accepted, DMARC passes/);
  // softfail is accepted by default; the HELO identity is checked when asked.
  assert.equal((await checkSpf(lookup, { ip: FORGER_IP, helo: 'x', mailFrom: 'a@soft.test' }, settings())).result, 'softfail');
  const helo = await checkSpf(lookup, { ip: ORIGIN_IP, helo: 'origin.test', mailFrom: '' }, settings(), 'helo');
  assert.deepEqual([helo.identity, helo.result, helo.domain], ['helo', 'pass', 'origin.test']);
});

test('ARC: a list that changed the message and sealed it with arcsign verifies as arc=pass; a trusted sealer overrides the DMARC failure', async () => {
  const signed = await dkimsign('sel', 'origin.test', 'origin', message('a@origin.test', 'Original text.\r\n'));
  // The list adds a footer (breaking the origin's body hash), records what it saw, and seals.
  const changed = Buffer.concat([signed, Buffer.from('-- \r\nThe list footer\r\n')]);
  const withAr = Buffer.concat([Buffer.from('Authentication-Results: mx.list.test; dkim=pass header.d=origin.test; spf=pass smtp.mailfrom=a@origin.test\r\n'), changed]);
  const sealed = await run('/usr/bin/arcsign', ['arc', 'list.test', keyFile.list!, 'mx.list.test'], withAr);
  assert.match(sealed.toString(), /^ARC-Seal: i=1; cv=none;/);
  const params = { ip: LIST_IP, helo: 'mx.list.test', mailFrom: 'bounce@list.test', message: sealed };
  const v = await verifyMessage(lookup, params, settings());
  assert.deepEqual([v.spf?.result, v.dkim[0]?.result, v.arc?.result, v.arc?.instance, v.arc?.sealer, v.dmarc?.result], ['pass', 'neutral', 'pass', 1, 'list.test', 'fail']);
  assert.match(v.authResultsHeader, /;\r\n\tarc=pass \(i=1 spf=pass dkim=pass\)$/);
  assert.equal(v.decision.action, 'refuse', 'the sealer is not trusted by default');
  const trusted = await verifyMessage(lookup, params, settings({ ARC_TRUSTED_SEALERS: 'list.test' }));
  assert.equal(trusted.decision.action, 'accept');
  assert.match(trusted.decision.reason!, /ARC chain sealed by trusted list\.test passes/);
  // A seal broken on the way (the body changed after sealing) fails.
  const broken = await verifyMessage(lookup, { ...params, message: Buffer.concat([sealed, Buffer.from('more\r\n')]) }, settings({ ARC_TRUSTED_SEALERS: 'list.test' }));
  assert.equal(broken.arc?.result, 'fail');
  assert.equal(broken.decision.action, 'refuse');
});

test('our own authserv-id: an incoming header claiming it is removed, others are kept', () => {
  const incoming = Buffer.from(
    'Received: from x\r\nAuthentication-Results: MX.Tsubame.Test; dkim=pass\r\n header.d=bank.test\r\nAuthentication-Results: (forged) "mx.tsubame.test"; spf=pass\r\nAuthentication-Results: mx.other.test; spf=fail\r\nSubject: s\r\n\r\nAuthentication-Results: mx.tsubame.test; in the body\r\n',
  );
  const { headers, removed } = removeOwnAuthResults(incoming, AUTHSERV);
  assert.equal(removed, 2);
  assert.equal(headers.toString(), 'Received: from x\r\nAuthentication-Results: mx.other.test; spf=fail\r\nSubject: s\r\n\r\nAuthentication-Results: mx.tsubame.test; in the body\r\n');
});

test('hostile: 1,000 DKIM-Signature fields: only DKIM_MAX_SIGNATURES are checked (and looked up), the rest noted, quickly', async () => {
  const body = 'Body of the flood.\r\n';
  const bh = createHash('sha256').update(body).digest('base64'); // relaxed canonical form of this body
  const fields = Array.from(
    { length: 1000 },
    (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d${i}.flood.test; s=s${i}; l=${i + 1}; h=from:to:subject; bh=${bh}; b=${Buffer.from(`sig${i}`).toString('base64')}\r\n`,
  ).join('');
  const started = Date.now();
  const v = await verifyMessage(lookup, { ip: FORGER_IP, helo: 'x', mailFrom: 'a@flood.test', message: message('a@flood.test', body, fields) }, settings());
  const ms = Date.now() - started;
  assert.equal(v.dkim.length, 10);
  assert.equal(v.dkimIgnored, 990);
  assert.deepEqual(v.dkim.map((d) => d.domain), Array.from({ length: 10 }, (_, i) => `d${i}.flood.test`), 'the topmost ten');
  assert.match(v.authResultsHeader, /\(990 more DKIM signatures not checked: DKIM_MAX_SIGNATURES=10\)/);
  assert.ok(v.dnsQueries <= 10 + 4, `DNS questions bounded by the cap (${v.dnsQueries})`);
  assert.ok(ms < 5000, `bounded time (${ms} ms)`);
  assert.equal(v.decision.action, 'accept');
});

test('hostile: l= longer than the body prints nothing on standard output; a signature covering part of the body is marked undersized', async () => {
  const body = 'Short body.\r\n';
  const bh = createHash('sha256').update(body).digest('base64');
  const fake = `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=origin.test; s=sel; l=100000; h=from; bh=${bh}; b=${Buffer.from('x').toString('base64')}\r\n`;
  const written: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    written.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  });
  try {
    const v = await verifyMessage(lookup, { ip: ORIGIN_IP, helo: 'x', mailFrom: 'a@origin.test', message: message('a@origin.test', body, fake) }, settings());
    assert.equal(v.dkim[0]!.result, 'fail');
  } finally {
    process.stdout.write = write;
  }
  assert.deepEqual(written.filter((w) => /TOTAL|EXPECTING/.test(w)), [], 'mailauth\'s debug line is not printed');
  // Signed over the first 20 octets of the body only, then more text appended: passes, marked undersized.
  const signer = createRequire(import.meta.url)('mailauth/lib/dkim/sign') as { dkimSign(m: Buffer, o: object): Promise<{ signatures: string }> };
  const original = message('a@origin.test', 'The first twenty oct and the rest.\r\n');
  const { signatures } = await signer.dkimSign(original, { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: 'origin.test', selector: 'sel', privateKey: readFileSync(keyFile.origin!), maxBodyLength: 20 }] });
  const extended = Buffer.concat([Buffer.from(signatures), original, Buffer.from('Appended by someone else.\r\n')]);
  const u = await verifyMessage(lookup, { ip: ORIGIN_IP, helo: 'x', mailFrom: 'a@origin.test', message: extended }, settings());
  assert.equal(u.dkim[0]!.result, 'pass');
  assert.match(u.authResultsHeader, /dkim=pass \(undersized signature: \d+ bytes unsigned\)/);
});

test('hostile: an SPF record that includes itself ends in permerror after the lookup limit', async () => {
  const started = Date.now();
  const spf = await checkSpf(lookup, { ip: FORGER_IP, helo: 'x', mailFrom: 'a@loop.test' }, settings());
  assert.equal(spf.result, 'permerror');
  assert.match(spf.comment!, /Too many DNS requests/);
  assert.ok(spf.lookups <= 11, `lookups counted: ${spf.lookups}`);
  assert.ok(Date.now() - started < 5000);
  assert.equal(spfDecision(spf, settings().spf, 'mail').action, 'accept', 'permerror is accepted by default (SPF_SMTP_STATUS_PERMERROR=2)');
  assert.equal(spfDecision(spf, settings({ SPF_SMTP_STATUS_PERMERROR: '5' }).spf, 'mail').reply, '550 5.7.24 SPF permerror: the SPF record of loop.test cannot be used (Too many DNS requests)');
});

test('hostile: a DMARC record of 60 KiB (over TCP through dnsmasq) is read without harm; the header stays short', async () => {
  const started = Date.now();
  const v = await verifyMessage(lookup, { ip: FORGER_IP, helo: 'x', mailFrom: 'a@evil.test', message: message('ceo@big.test') }, settings());
  assert.ok(bigDns.queries.some((q) => q.name === '_dmarc.big.test' && q.transport === 'tcp'), 'the record came whole, over TCP');
  assert.deepEqual([v.dmarc?.result, v.dmarc?.policy], ['fail', 'reject']);
  assert.equal(v.decision.action, 'refuse');
  assert.ok(v.authResultsHeader.length < 1000, `header length ${v.authResultsHeader.length}`);
  assert.ok(Date.now() - started < 10_000);
});
