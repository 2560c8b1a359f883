// The queue's room for a DKIM signature in front of a message (QueueStoreOptions.prefixesFor), on
// a real file system, checked with mailauth's verifier in process: a streamed message whose
// header block ends after the in-memory limit is still signed (it waits in memory for the end of
// its header block, within bounds); one whose header block never ends in time is queued
// unsigned, intact; the signature is made once per message whatever the number of copies; a
// prefix over a longer spare file leaves none of the old bytes; a signing failure queues nothing.
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DkimConfig } from '../../src/config/types.js';
import { MAX_HEADER_BYTES, MessageSigner } from '../../src/dkim/index.js';
import { dnsRecordValue } from '../../src/dkim/keygen.js';
import { QueueStore, QueueWriteError, type EnvelopeDraft } from '../../src/queue/index.js';
import type { MessagePrefix } from '../../src/queue/types.js';

const requireCjs = createRequire(import.meta.url);
const { dkimVerify } = requireCjs('mailauth/lib/dkim/verify.js') as {
  dkimVerify: (message: Buffer, opts: { resolver: (name: string, type: string) => Promise<string[][]> }) => Promise<{ results: Array<{ status: { result: string } }> }>;
};

const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const DKIM: DkimConfig = { file: null, keys: [{ domain: 'example.com', subdomains: false, selector: 's1', algorithm: 'rsa-sha256', keyFile: '/k', privateKey: pair.privateKey, signatureBytes: 256, file: '/keys', line: 1 }] };
const RECORD = dnsRecordValue(pair.publicKey);

async function verdicts(message: Buffer): Promise<string[]> {
  const { results } = await dkimVerify(message, { resolver: async () => [[RECORD]] });
  return results.map((r) => r.status.result);
}

function draft(channel: string): EnvelopeDraft {
  return {
    channel,
    from: 'alice@example.com',
    mailParams: {},
    sourceChannel: 'tcp_intranet',
    clientAddress: '127.0.0.1',
    clientHelo: 'client.example',
    arrival: new Date('2026-12-07T10:00:00Z'),
    recipients: [{ address: 'bob@example.net', original: 'bob@example.net', orcpt: null, notify: null, state: 'pending', status: null }],
  };
}

const message = (header: string, body: string) => Buffer.from(`Received: by x; Mon, 7 Dec 2026 10:00:00 +0000\r\nFrom: <alice@example.com>\r\nSubject: s\r\n${header}\r\n${body}`);

describe('signatures in the queue', () => {
  let dir: string;
  let store: QueueStore;
  let made: MessageSigner[];
  /** tcp_* channels sign; one signer per message, as dkimPrefixesFor does. */
  const open = (prefixes?: (drafts: EnvelopeDraft[]) => Array<MessagePrefix | null>) =>
    new QueueStore({
      queueDir: join(dir, 'queue'),
      corruptDir: join(dir, 'corrupt'),
      subdirs: () => 0,
      bootId: '0f2c6d3e-1111-4a4a-9b9b-123456789abc',
      prefixesFor:
        prefixes ??
        ((drafts) => {
          const signer = new MessageSigner(DKIM);
          made.push(signer);
          return drafts.map((d) => (d.channel.startsWith('tcp_') ? signer : null));
        }),
    });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsubame-queue-dkim-'));
    made = [];
    store = open();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const streamed = async (msg: Buffer, drafts: EnvelopeDraft[], chunk = 16 * 1024) => {
    const tx = store.begin(drafts);
    for (let at = 0; at < msg.length; at += chunk) await tx.write(msg.subarray(at, at + chunk));
    const refs = await tx.commit();
    return Promise.all(refs.map(async (r) => (await store.readMessage(r.path)).body));
  };

  test('a header block that ends after the 64 KiB held in memory: the message waits for it and is signed', async () => {
    const refs = Array.from({ length: 3000 }, (_, i) => `<${i}.thread@example.com>`).join('\r\n ');
    const msg = message(`References: ${refs}\r\n`, 'body\r\n'.repeat(40_000));
    assert.ok(msg.indexOf('\r\n\r\n') > 64 * 1024);
    const [signed, plain] = await streamed(msg, [draft('tcp_local'), draft('l')]);
    assert.ok(plain!.equals(msg));
    assert.ok(signed!.subarray(signed!.length - msg.length).equals(msg));
    assert.match(signed!.toString('latin1', 0, 400), /^DKIM-Signature: [^]*h=From:From:Reply-To:Subject:Subject:/);
    assert.deepEqual(await verdicts(signed!), ['pass']);
  });

  test('a header block longer than the signer takes: queued unsigned and intact', async () => {
    const refs = Array.from({ length: MAX_HEADER_BYTES / 20 }, (_, i) => `<${i}.t@example.com>`).join('\r\n ');
    const msg = message(`References: ${refs}\r\n`, 'body\r\n');
    const [copy] = await streamed(msg, [draft('tcp_local')], 8192);
    assert.ok(copy!.equals(msg), 'the message as received, without a signature');
    assert.equal(made[0]!.unsignedReason, `header block over ${MAX_HEADER_BYTES} bytes`);
  });

  test('one signature per message: two signing copies get the same bytes from one signer', async () => {
    const msg = message('To: bob@example.net\r\n', 'hello\r\n');
    let finishes = 0;
    const signer = new MessageSigner(DKIM);
    const finish = signer.finish.bind(signer);
    signer.finish = () => {
      finishes++;
      return finish();
    };
    await store.close();
    store = open((drafts) => drafts.map((d) => (d.channel === 'l' ? null : signer)));
    const refs = await store.enqueue([draft('tcp_local'), draft('tcp_intranet'), draft('l')], msg);
    const bodies = await Promise.all(refs.map(async (r) => (await store.readMessage(r.path)).body));
    assert.equal(finishes, 1, 'signed once');
    assert.ok(bodies[0]!.equals(bodies[1]!), 'the same signature in both signing copies');
    assert.ok(bodies[2]!.equals(msg));
    assert.deepEqual(await verdicts(bodies[0]!), ['pass']);
  });

  test('a signed message over a longer spare file: no byte of the old one is left, buffered or streamed', async () => {
    for (const size of [2_000, 100_000]) {
      const [old] = await store.enqueue([draft('l')], Buffer.alloc(30_000, 0x62));
      const ino = statSync(old!.path).ino;
      assert.ok(store.spares.retireSync(old!.path, statSync(old!.path).size));
      store.spares.listSync();
      const msg = message('', 'x'.repeat(size) + '\r\n');
      const tx = store.begin([draft('tcp_local')]);
      for (let at = 0; at < msg.length; at += 16 * 1024) await tx.write(msg.subarray(at, at + 16 * 1024));
      const [ref] = await tx.commit();
      assert.equal(statSync(ref!.path).ino, ino, `${size}: the spare was used`);
      const { body: signed } = await store.readMessage(ref!.path);
      assert.ok(signed.subarray(signed.length - msg.length).equals(msg), `${size}: the message ends the file`);
      assert.deepEqual(await verdicts(signed), ['pass']);
    }
  });

  test('a signature that cannot be made: a temporary failure, nothing queued (buffered and streamed)', async () => {
    const failing: MessagePrefix = {
      update() {},
      length: 500,
      giveUp() {},
      finish() {
        throw new Error('the key went away');
      },
    };
    await store.close();
    store = open((drafts) => drafts.map(() => failing));
    await assert.rejects(store.enqueue([draft('tcp_local'), draft('l')], message('', 'small\r\n')), (err: unknown) => err instanceof QueueWriteError && /cannot sign the message: the key went away/.test(err.message));
    const tx = store.begin([draft('tcp_local')]);
    await tx.write(Buffer.alloc(200_000, 0x61));
    await assert.rejects(tx.commit(), QueueWriteError);
    // A prefix longer than the room it asked for is refused too, before it could overwrite the message.
    let grown = 10;
    const growing: MessagePrefix = { update() {}, get length() { return grown; }, giveUp() {}, finish: () => Buffer.alloc(++grown, 0x41) };
    await store.close();
    store = open((drafts) => drafts.map(() => growing));
    const tx2 = store.begin([draft('tcp_local')]);
    await tx2.write(Buffer.alloc(200_000, 0x61));
    await assert.rejects(tx2.commit(), (err: unknown) => err instanceof QueueWriteError && /cannot sign the message: 11 bytes made for 10 reserved/.test(err.message));
    const left = ['tcp_local', 'l', '.tmp'].flatMap((d) => {
      try {
        return readdirSync(join(dir, 'queue', d));
      } catch {
        return [];
      }
    });
    assert.deepEqual(left, [], 'no queue file, no temporary file');
  });
});
