// DKIM signatures made by the queue, checked by two independent verifiers (python3-dkim's
// dkimverify and opendkim-testmsg) that take the public keys from DNS: a dnsmasq serving the TXT
// records `imsimta dkim keygen` prints. rsa-sha256 and ed25519-sha256 (RFC 8463) verify; a
// message changed after signing does not; relaxed canonicalization survives whitespace changes
// in the header; over-signing makes an added From: (or Reply-To:) fail. The copies come from the
// real paths: a small message written whole, a large one streamed, the notices (DSN) path and
// `imsimta submit`; a copy queued to a channel without `dkimsign` is left as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { instancePaths } from '../../src/common/instance.js';
import { MailLog } from '../../src/common/mail-log.js';
import { loadInstanceConfigOrThrow } from '../../src/config/load.js';
import type { InstanceConfig } from '../../src/config/types.js';
import { keygen } from '../../src/dkim/keygen.js';
import { NoticeSender } from '../../src/notices/send.js';
import { queueStoreFor, type EnvelopeDraft, type QueueStore } from '../../src/queue/index.js';
import { compileRewriter } from '../../src/rewrite/index.js';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';
import { dkimpyVerify, opendkimVerify, queriedNames, startKeyDns, type KeyDns } from '../helpers/dkim-verifiers.js';

const IMTA_CNF = `! dkim test instance
localhost            $U%localhost@localhost
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx dkimsign
tcp-daemon
`;

let inst: TestInstance;
let dns: KeyDns;
let config: InstanceConfig;
let store: QueueStore;

/** `s._domainkey.d. IN TXT "a" "b"` → [name, [strings]] */
function parseRecord(line: string): [string, string[]] {
  const m = /^(\S+)\. IN TXT ((?:"[^"]*" ?)+)$/.exec(line);
  assert.ok(m, `a zone-file TXT line: ${line}`);
  return [m[1]!, [...m[2]!.matchAll(/"([^"]*)"/g)].map((s) => s[1]!)];
}

before(async () => {
  inst = makeInstance({ files: { 'etc/imta.cnf': IMTA_CNF, 'etc/option.dat': 'LOCAL_HOST=rsa.example\n' } });
  const dkimDir = instancePaths(inst.root).dkimDir;
  const records: Record<string, string[]> = {};
  for (const k of [
    { domain: 'rsa.example', selector: 's1', type: 'rsa' as const },
    { domain: 'ed.example', selector: 'e1', type: 'ed25519' as const },
    { domain: 'both.example', selector: 'r', type: 'rsa' as const },
    { domain: 'both.example', selector: 'e', type: 'ed25519' as const },
  ]) {
    const made = await keygen({ ...k, bits: 2048, dkimDir });
    const [name, strings] = parseRecord(made.record);
    records[name] = strings;
  }
  dns = await startKeyDns(records);
  config = loadInstanceConfigOrThrow(inst.root);
  store = queueStoreFor(instancePaths(inst.root), config);
});

after(async () => {
  await store?.close();
  await dns?.stop();
  inst?.remove();
});

function message(from: string, body = 'Hello,\r\n\r\nthe  body,  with   spaces \t \r\nand a last line.\r\n', extra = ''): Buffer {
  return Buffer.from(
    `Received: from client.example ([127.0.0.1])\r\n\tby mta.example (tsubame) with ESMTP id X1;\r\n\tMon, 7 Dec 2026 10:00:00 +0000\r\n` +
      `From: Alice Example <${from}>\r\nTo: Bob <bob@remote.example>\r\nSubject: a signed\r\n  message\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n` +
      `Message-ID: <m1@${from.split('@')[1]}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n${extra}\r\n${body}`,
    'utf8',
  );
}

function draft(channel: string, from: string): EnvelopeDraft {
  return {
    channel,
    from,
    mailParams: {},
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.0.1',
    clientHelo: 'client.example',
    arrival: new Date(),
    recipients: [{ address: 'bob@remote.example', original: 'bob@remote.example', orcpt: null, notify: null, state: 'pending', status: null }],
  };
}

/** Queues `msg` to tcp_local (signing) and l (not), returns both copies as queued. */
async function queued(msg: Buffer, from: string): Promise<{ signed: Buffer; plain: Buffer }> {
  const refs = await store.enqueue([draft('tcp_local', from), draft('l', from)], msg);
  const [signed, plain] = await Promise.all(refs.map(async (r) => (await store.readMessage(r.path)).body));
  return { signed: signed!, plain: plain! };
}

function bothVerify(msg: Buffer, what: string): void {
  const py = dkimpyVerify(dns, msg);
  assert.ok(py.ok, `dkimverify on ${what}: ${py.output}`);
  const od = opendkimVerify(dns, msg);
  assert.ok(od.ok, `opendkim-testmsg on ${what}: ${od.output}`);
}

function bothRefuse(msg: Buffer, what: string): void {
  const py = dkimpyVerify(dns, msg);
  assert.ok(!py.ok, `dkimverify must refuse ${what}: ${py.output}`);
  const od = opendkimVerify(dns, msg);
  assert.ok(!od.ok, `opendkim-testmsg must refuse ${what}: ${od.output}`);
}

test('rsa-sha256: the queued copy to a dkimsign channel verifies with dkimverify and opendkim-testmsg; the l copy is untouched', async () => {
  const msg = message('alice@rsa.example');
  const { signed, plain } = await queued(msg, 'alice@rsa.example');
  assert.match(signed.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=rsa\.example;\r\n\ts=s1; t=\d{10};/);
  assert.ok(signed.subarray(signed.length - msg.length).equals(msg), 'the message follows the signature unchanged');
  assert.ok(plain.equals(msg), 'the copy for a channel without dkimsign is the message as received');
  bothVerify(signed, 'an rsa-sha256 signature');
  assert.ok(queriedNames(dns).includes('s1._domainkey.rsa.example'), 'the key came from the test DNS');
  bothRefuse(plain, 'the unsigned copy');
});

test('ed25519-sha256 (RFC 8463) verifies with both; a domain with two keys gets two signatures, each verifying', async () => {
  const { signed } = await queued(message('carol@ed.example'), 'carol@ed.example');
  assert.match(signed.toString('latin1'), /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=ed\.example;\r\n\ts=e1;/);
  bothVerify(signed, 'an ed25519-sha256 signature');
  bothRefuse(Buffer.from(signed.toString('latin1').replace('and a last line.', 'and a last line?'), 'latin1'), 'a changed body under an ed25519 signature');

  const { signed: dual } = await queued(message('dave@both.example'), 'dave@both.example');
  const text = dual.toString('latin1');
  assert.equal(text.match(/^DKIM-Signature:/gm)?.length, 2);
  assert.match(text, /^DKIM-Signature: v=1; a=rsa-sha256;[^]*^DKIM-Signature: v=1; a=ed25519-sha256;/m);
  for (const index of [0, 1]) {
    const v = dkimpyVerify(dns, dual, index);
    assert.ok(v.ok, `dkimverify --index ${index}: ${v.output}`);
  }
  const od = opendkimVerify(dns, dual);
  assert.ok(od.ok, `opendkim-testmsg on two signatures: ${od.output}`);
});

test('a message changed after signing fails: a body byte, a signed header value', async () => {
  const { signed } = await queued(message('alice@rsa.example'), 'alice@rsa.example');
  bothVerify(signed, 'the message as signed');
  const text = signed.toString('latin1');
  bothRefuse(Buffer.from(text.replace('and a last line.', 'and a last line!'), 'latin1'), 'a changed body');
  bothRefuse(Buffer.from(text.replace('Subject: a signed', 'Subject: a forged'), 'latin1'), 'a changed Subject:');
  bothRefuse(Buffer.from(text.replace('\r\n\r\nHello,\r\n', '\r\n\r\nHello,\r\nA line more.\r\n'), 'latin1'), 'a line added to the body');
});

test('relaxed/relaxed: whitespace changed in the header fields and at the ends of body lines still verifies', async () => {
  const { signed } = await queued(message('alice@rsa.example'), 'alice@rsa.example');
  const changed = signed
    .toString('latin1')
    .replace('Subject: a signed\r\n  message', 'subject:    a   signed\r\n\t\tmessage   ')
    .replace('To: Bob <bob@remote.example>', 'To:\tBob\r\n <bob@remote.example>')
    .replace('and a last line.', 'and a last line.   \t')
    .replace('Date: Mon,', 'DATE:  Mon,');
  bothVerify(Buffer.from(changed, 'latin1'), 'the refolded header');
});

test('over-signing: a From:, Reply-To: or Subject: added after signing fails, an unsigned field added does not', async () => {
  // (Without over-signing, a field added above the signed one of its name would pass: h= picks
  // instances from the bottom up. Both verifiers also refuse a second From: of their own accord.)
  const { signed } = await queued(message('alice@rsa.example'), 'alice@rsa.example');
  const text = signed.toString('latin1');
  const bodyStart = text.indexOf('\r\n\r\n') + 2;
  const withField = (field: string, atTop: boolean) =>
    Buffer.from(atTop ? text.replace(/\r\nReceived: /, `\r\n${field}\r\nReceived: `) : text.slice(0, bodyStart) + `${field}\r\n` + text.slice(bodyStart), 'latin1');
  bothRefuse(withField('From: Mallory <mallory@rsa.example>', true), 'a From: added above the signed one');
  bothRefuse(withField('From: Mallory <mallory@rsa.example>', false), 'a From: added below the signed one');
  bothRefuse(withField('Reply-To: mallory@attacker.example', false), 'a Reply-To: added where there was none');
  bothRefuse(withField('Subject: URGENT: wire the money', true), 'a second Subject: added above the signed one');
  bothVerify(withField('X-Scanned-By: a relay', false), 'an added field that is not signed');
});

test('a 3 MB message streamed into the queue in odd-sized chunks is signed without holding it: both verifiers agree', async () => {
  const line = 'Lorem ipsum dolor sit amet,  consectetur \tadipiscing elit.  \r\n';
  const body = line.repeat(Math.ceil((3 * 1024 * 1024) / line.length));
  const msg = message('alice@rsa.example', body);
  const tx = store.begin([draft('tcp_local', 'alice@rsa.example'), draft('l', 'alice@rsa.example')]);
  let sizes = 0;
  for (let at = 0, i = 0; at < msg.length; i++) {
    const n = [1, 7, 4096, 65536, 100_000, 13][i % 6]!;
    await tx.write(msg.subarray(at, at + n));
    at += n;
    sizes++;
  }
  assert.ok(sizes > 50);
  // Streamed: both copies are on disk, whole, before the signature exists.
  const tmp = readdirSync(store.tmpDir).map((f) => statSync(join(store.tmpDir, f)).size);
  assert.equal(tmp.filter((size) => size > msg.length).length, 2, `two temporary files holding the message (${tmp.join(', ')})`);
  const refs = await tx.commit();
  const [signed, plain] = await Promise.all(refs.map(async (r) => (await store.readMessage(r.path)).body));
  assert.ok(plain!.equals(msg), 'the l copy is the message byte for byte');
  assert.ok(signed!.subarray(signed!.length - msg.length).equals(msg));
  assert.match(signed!.toString('latin1', 0, 200), /^DKIM-Signature: v=1; a=rsa-sha256;/);
  bothVerify(signed!, 'the streamed message');
});

test('the notices path: a DSN from postmaster@LOCAL_HOST queued to tcp_local is signed and verifies', async () => {
  const [orig] = await store.enqueue([draft('l', 'sender@remote.example')], message('sender@remote.example'));
  const env = await store.readEnvelope(orig!.path);
  const mailLog = new MailLog(join(inst.root, 'log', 'mail.log'));
  const notices = new NoticeSender({ store, rewriter: compileRewriter(config.imta), mailLog, logger: pino({ level: 'silent' }), localHost: config.options.localHost, returnLimitOctets: 1024 * 1024 });
  const sent = await notices.send({ envelope: env, path: orig!.path, recipients: [{ address: 'bob@remote.example', orcpt: null, action: 'failed', status: '550 5.1.1 <bob@remote.example>: no such user', remoteHost: null }], now: new Date(), willRetryUntil: null });
  mailLog.close();
  assert.ok(sent.sent, 'a notice was queued');
  if (!sent.sent) return;
  assert.equal(sent.ref.channel, 'tcp_local');
  const { body } = await store.readMessage(sent.ref.path);
  assert.match(body.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=rsa\.example;/);
  assert.match(body.toString('latin1'), /\r\nFrom: Mail Delivery System <postmaster@rsa\.example>\r\n/);
  bothVerify(body, 'a delivery status notification');
});

test('the local submission path: `imsimta submit` to a remote recipient queues a signed copy', async () => {
  const r = await runCli('imsimta', ['submit', '-f', 'alice@rsa.example', 'bob@remote.example'], {
    root: inst.root,
    input: 'From: Alice <alice@rsa.example>\nTo: bob@remote.example\nSubject: submitted\n\nsubmitted  text\n',
  });
  assert.equal(r.code, 0, r.stderr);
  const dir = join(inst.root, 'queue', 'tcp_local');
  const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => /ZZ[0-9A-Z]+\.00$/.test(f));
  const bodies = await Promise.all(files.map(async (f) => (await store.readMessage(join(dir, f))).body));
  const submitted = bodies.find((b) => b.includes('Subject: submitted'));
  assert.ok(submitted, 'the submitted message is in the tcp_local queue');
  assert.match(submitted.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256;[^]*\r\nReceived: by rsa\.example \(tsubame submit/);
  bothVerify(submitted, 'a submitted message');
  assert.match(readFileSync(join(inst.root, 'log', 'mail.log'), 'utf8'), /queued by local submission/);
});
