// tsubame's SRS against an independent implementation: Postfix's postsrsd (libsrs2's code), run
// on loopback with the same secrets and domain. The addresses each makes are the same string,
// each reverses the other's (SRS0 and SRS1, after case changes), both refuse the same forgeries,
// and a rotation works across the two: an address postsrsd signed with the old secret is
// accepted by tsubame while that secret is still listed after the new one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { secretKey } from '../../src/config/srs.js';
import { srsForward, srsReverse, timestamp, type SrsSettings } from '../../src/srs/index.js';
import { startPostsrsd, type Postsrsd } from '../helpers/postsrsd.js';

const DOMAIN = 'srs.example';
const SECRET = 'interop-secret-9f1c2b7a4e6d8c0b';
const OLD_SECRET = 'interop-old-secret-3a5b7c9d1e2f4a6b';
const settings = (secrets: string[]): SrsSettings => ({ domain: DOMAIN, secrets: secrets.map(secretKey), maxAgeDays: 21 });
const ours = settings([SECRET]);

let srsd: Postsrsd;
let srsdOld: Postsrsd;
before(async () => {
  srsd = await startPostsrsd({ domain: DOMAIN, secrets: [SECRET] });
  srsdOld = await startPostsrsd({ domain: DOMAIN, secrets: [OLD_SECRET] });
});
after(async () => {
  await srsd?.close();
  await srsdOld?.close();
});

/** tsubame's forward, made at the moment postsrsd made its own (a day boundary between the two is retried). */
async function bothForward(sender: string, daemon = srsd, s = ours): Promise<{ theirs: string; mine: string }> {
  for (let attempt = 0; ; attempt++) {
    const before = timestamp(Date.now());
    const theirs = await daemon.forward(sender);
    const r = srsForward(sender, s, Date.now());
    assert.equal(theirs.code, 200, `postsrsd forward ${sender}: ${theirs.value}`);
    assert.equal(r.kind, 'rewritten', sender);
    if (timestamp(Date.now()) === before || attempt > 0) return { theirs: theirs.value, mine: (r as { address: string }).address };
  }
}

function mineReversed(address: string, s = ours): string {
  const r = srsReverse(address, s, Date.now());
  assert.equal(r.kind, 'reversed', `tsubame reverse ${address}: ${JSON.stringify(r)}`);
  return (r as { address: string }).address;
}

test('SRS0: the same address from both for the same sender; each reverses the other\'s, also lower-cased', async () => {
  for (const sender of ['alice@orig.example', 'Alice.Smith+news@Orig.Example', 'a=b@sub.orig.example', "o'neil@orig.example"]) {
    const { theirs, mine } = await bothForward(sender);
    assert.equal(mine, theirs, sender);
    assert.equal(mineReversed(theirs), sender);
    const back = await srsd.reverse(mine);
    assert.deepEqual(back, { code: 200, value: sender });
    assert.equal(mineReversed(theirs.toLowerCase()), sender.toLowerCase());
    assert.deepEqual(await srsd.reverse(mine.toLowerCase()), { code: 200, value: sender.toLowerCase() });
  }
});

test('SRS1: another forwarder\'s SRS0 becomes the same SRS1 in both, and both send its bounce back to that forwarder', async () => {
  const upstream = 'SRS0=AbC+=ZZ=orig.example=alice@fwd1.example';
  const { theirs, mine } = await bothForward(upstream);
  assert.equal(mine, theirs);
  assert.match(mine, /^SRS1=[^=]{4}=fwd1\.example==AbC\+=ZZ=orig\.example=alice@srs\.example$/);
  assert.equal(mineReversed(theirs), upstream);
  assert.deepEqual(await srsd.reverse(mine), { code: 200, value: upstream });
  // A chain: the SRS1 of a second forwarder is re-signed, first hop kept.
  const chained = await bothForward('SRS1=wxyz=fwd1.example==AbC+=ZZ=orig.example=alice@fwd2.example');
  assert.equal(chained.mine, chained.theirs);
  assert.equal(mineReversed(chained.theirs), upstream);
});

test('forgeries: an address altered after signing is refused by both, a different secret\'s address too', async () => {
  const { mine } = await bothForward('alice@orig.example');
  for (const forged of [mine.replace('=alice@', '=mallory@'), mine.replace('=orig.example=', '=evil.example='), mine.replace(/^SRS0=[^=]{4}=/, 'SRS0=AAAA=')]) {
    assert.equal(srsReverse(forged, ours, Date.now()).kind, 'invalid', forged);
    assert.equal((await srsd.reverse(forged)).code, 500, `postsrsd accepted ${forged}`);
  }
  const other = await srsdOld.forward('alice@orig.example');
  assert.equal(srsReverse(other.value, ours, Date.now()).kind, 'invalid');
  assert.equal((await srsd.reverse(other.value)).code, 500);
});

test('rotation across the two: postsrsd\'s address signed with the old secret is accepted while the old secret is listed second', async () => {
  const signedOld = (await srsdOld.forward('alice@orig.example')).value;
  assert.equal(mineReversed(signedOld, settings([SECRET, OLD_SECRET])), 'alice@orig.example');
  assert.equal(srsReverse(signedOld, settings([SECRET]), Date.now()).kind, 'invalid', 'once removed, no longer');
  // Signing with [new, old] is signing with new: postsrsd (new) reads it.
  const r = srsForward('bob@orig.example', settings([SECRET, OLD_SECRET]), Date.now());
  assert.equal(r.kind, 'rewritten');
  assert.deepEqual(await srsd.reverse((r as { address: string }).address), { code: 200, value: 'bob@orig.example' });
});
