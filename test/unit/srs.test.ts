// The Sender Rewriting Scheme: SRS0/SRS1 forward and reverse as libsrs2 writes them (the hash
// recomputed here independently), round trips, case changes on the way back, forgeries and
// replays, expiry across the 1024-day cycle, secret rotation, the channel keywords' decision, and
// the secrets file edit of `imsimta srs keygen`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { secretKey } from '../../src/config/srs.js';
import { isSrsLocalPart, senderForCopy, srsForward, srsRequested, srsReverse, timestamp, withNewSecret, type SrsSettings } from '../../src/srs/index.js';

const DAY = 24 * 60 * 60 * 1000;
const NOW = Date.UTC(2026, 4, 17, 12, 0, 0);
const SECRET = 'unit-test-secret-0123456789abcdef';
const settings = (secrets: string[] = [SECRET], extra: Partial<SrsSettings> = {}): SrsSettings => ({ domain: 'srs.example', secrets: secrets.map(secretKey), maxAgeDays: 21, ...extra });

/** libsrs2's hash, computed here without the module: base64(HMAC-SHA1(secret, lower-cased fields)), 4 characters. */
function libsrs2Hash(secret: string, ...fields: string[]): string {
  const h = createHmac('sha1', secret);
  for (const f of fields) h.update(f.toLowerCase());
  return h.digest('base64').slice(0, 4);
}

function rewritten(sender: string, s = settings(), now = NOW): string {
  const r = srsForward(sender, s, now);
  assert.equal(r.kind, 'rewritten', r.kind === 'unchanged' ? r.reason : '');
  return (r as { address: string }).address;
}

function reversed(address: string, s = settings(), now = NOW): string {
  const r = srsReverse(address, s, now);
  assert.equal(r.kind, 'reversed', r.kind === 'invalid' ? r.reason : r.kind);
  return (r as { address: string }).address;
}

function refusal(address: string, s = settings(), now = NOW): string {
  const r = srsReverse(address, s, now);
  assert.equal(r.kind, 'invalid', `expected a refusal of ${address}, got ${r.kind}`);
  return (r as { reason: string }).reason;
}

test('SRS0: SRS0=HHHH=TT=domain=local@SRS_DOMAIN, the hash and the day stamp exactly as libsrs2 makes them', () => {
  const stamp = timestamp(NOW);
  const day = Math.floor(NOW / DAY) % 1024;
  const base32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  assert.equal(stamp, base32[day >> 5]! + base32[day & 31]!);
  assert.equal(rewritten('alice@Orig.Example'), `SRS0=${libsrs2Hash(SECRET, stamp, 'Orig.Example', 'alice')}=${stamp}=Orig.Example=alice@srs.example`);
});

test('round trips: plus, dots, = and UTF-8 in the local part, case in the domain — each comes back exactly', () => {
  for (const sender of ['alice@orig.example', 'first.last+tag@sub.orig.example', 'a=b=c@orig.example', 'Ünïcødé@orig.example', 'bob@ORIG.EXAMPLE', "o'neil&co@orig.example"]) {
    assert.equal(reversed(rewritten(sender)), sender, sender);
  }
});

test('case changed on the way back (a local part lower- or upper-cased by some MTA): still verified', () => {
  const address = rewritten('Alice@Orig.Example');
  assert.equal(reversed(address.toLowerCase()), 'alice@orig.example');
  const [local, domain] = address.split('@') as [string, string];
  assert.equal(reversed(`${local.toUpperCase()}@${domain.toUpperCase()}`), 'ALICE@ORIG.EXAMPLE');
  // Another separator after the tag (libsrs2 takes = - +), and srs0 in lower case.
  assert.equal(reversed(`srs0-${local.slice(5)}@${domain}`), 'Alice@Orig.Example');
});

test('SRS1: a forwarder\'s SRS0 becomes SRS1 (our hash, its host, its SRS0 part); reversed, it goes back to that forwarder unchanged', () => {
  const theirs = 'SRS0=abcd=TT=orig.example=alice@fwd1.example';
  const ours = rewritten(theirs);
  assert.equal(ours, `SRS1=${libsrs2Hash(SECRET, 'fwd1.example', '=abcd=TT=orig.example=alice')}=fwd1.example==abcd=TT=orig.example=alice@srs.example`);
  assert.equal(reversed(ours), theirs);
  // Another forwarder's SRS1 is re-signed: first hop and SRS0 part kept, only the hash is ours.
  const chained = rewritten('SRS1=wxyz=fwd1.example==abcd=TT=orig.example=alice@fwd2.example');
  assert.equal(chained, `SRS1=${libsrs2Hash(SECRET, 'fwd1.example', '=abcd=TT=orig.example=alice')}=fwd1.example==abcd=TT=orig.example=alice@srs.example`);
  assert.equal(reversed(chained), theirs);
  assert.match(refusal(ours.replace('fwd1.example', 'evil.example')), /does not verify/);
});

test('senders kept as they are: <>, our own SRS domain, a quoted local part, no domain, no secret', () => {
  const unchanged = (sender: string, s = settings()) => {
    const r = srsForward(sender, s, NOW);
    assert.equal(r.kind, 'unchanged', sender);
    return (r as { reason: string }).reason;
  };
  assert.match(unchanged(''), /null sender/);
  assert.match(unchanged('<>'), /null sender/);
  assert.match(unchanged('alice@SRS.Example'), /already at srs\.example/);
  assert.match(unchanged(rewritten('alice@orig.example')), /already at srs\.example/); // ours, forwarded again
  assert.match(unchanged('"a b"@orig.example'), /quoted local part/);
  assert.match(unchanged('"a@b"@orig.example'), /quoted local part/);
  assert.match(unchanged('x@[192.0.2.1]'), /domain literal/);
  assert.match(unchanged('postmaster'), /without a domain/);
  assert.match(unchanged('alice@orig.example', settings([])), /no SRS secret/);
});

test('forgeries: another hash, an altered local part, domain or day stamp, a short hash, another secret — all refused', () => {
  const good = rewritten('alice@orig.example');
  const [tag, hash, stamp, domain, rest] = good.split('=') as [string, string, string, string, string];
  const flip = (c: string) => (c.toLowerCase() === 'a' ? 'b' : 'a');
  assert.match(refusal(`${tag}=${flip(hash[0]!)}${hash.slice(1)}=${stamp}=${domain}=${rest}`), /does not verify/);
  assert.match(refusal(good.replace('=alice@', '=mallory@')), /does not verify/);
  assert.match(refusal(good.replace('=orig.example=', '=evil.example=')), /does not verify/);
  const yesterday = timestamp(NOW - DAY);
  assert.match(refusal(`${tag}=${hash}=${yesterday}=${domain}=${rest}`), /does not verify/);
  assert.match(refusal(`${tag}=${hash.slice(0, 3)}=${stamp}=${domain}=${rest}`), /hash "\S{3}" too short/);
  assert.match(refusal(good, settings(['an-entirely-different-secret-9876'])), /does not verify/);
  // A longer hash is cut to the length made (libsrs2).
  assert.equal(reversed(`${tag}=${hash}XYZ=${stamp}=${domain}=${rest}`), 'alice@orig.example');
  // Malformed SRS addresses at our domain are refused, not routed as ordinary local parts.
  assert.match(refusal('SRS0=@srs.example'), /without a hash/);
  assert.match(refusal(`SRS0=${hash}@srs.example`), /without a timestamp/);
  assert.match(refusal(`SRS0=${hash}=${stamp}@srs.example`), /without the original domain/);
  assert.match(refusal(`SRS0=${hash}=${stamp}=orig.example@srs.example`), /without the original local part/);
  assert.match(refusal(`SRS0=${hash}=1!=orig.example=alice@srs.example`), /not two base32 characters/);
  assert.match(refusal('SRS1=abcd@srs.example'), /without the first forwarder/);
  assert.match(refusal('SRS1=abcd=fwd1.example@srs.example'), /without its SRS0 part/);
});

test('age: valid for SRS_MAXAGE days, refused the day after; a stamp from the future is refused; the 1024-day wrap is followed', () => {
  const made = rewritten('alice@orig.example');
  assert.equal(reversed(made, settings(), NOW + 21 * DAY), 'alice@orig.example');
  assert.match(refusal(made, settings(), NOW + 22 * DAY), /expired \(22 days old; SRS_MAXAGE is 21\)/);
  assert.match(refusal(made, settings([SECRET], { maxAgeDays: 7 }), NOW + 8 * DAY), /expired \(8 days old; SRS_MAXAGE is 7\)/);
  assert.match(refusal(made, settings(), NOW - DAY), /expired \(1023 days old/);
  // Made on the last day of a 1024-day cycle (stamp 77), bounced 6 days later in the next cycle.
  const lastDay = (Math.floor(NOW / DAY / 1024) * 1024 + 1023) * DAY + 3600_000;
  const atEnd = rewritten('alice@orig.example', settings(), lastDay);
  assert.match(atEnd, /^SRS0=....=77=/);
  assert.equal(reversed(atEnd, settings(), lastDay + 6 * DAY), 'alice@orig.example');
});

test('rotation: the first secret signs, every secret verifies; a secret removed no longer verifies', () => {
  const old = 'the-old-secret-that-signed-last-month';
  const byOld = rewritten('alice@orig.example', settings([old]));
  const rotated = settings([SECRET, old]);
  assert.equal(reversed(byOld, rotated), 'alice@orig.example');
  assert.equal(rewritten('alice@orig.example', rotated), rewritten('alice@orig.example', settings([SECRET])));
  assert.match(refusal(byOld, settings([SECRET])), /does not verify/);
});

test('not ours: SRS addresses at other domains and ordinary local parts at ours are routed as usual', () => {
  assert.deepEqual(srsReverse('SRS0=abcd=TT=orig.example=alice@fwd1.example', settings(), NOW), { kind: 'not-srs' });
  assert.deepEqual(srsReverse('postmaster@srs.example', settings(), NOW), { kind: 'not-srs' });
  assert.deepEqual(srsReverse('SRS2=abcd@srs.example', settings(), NOW), { kind: 'not-srs' });
  assert.deepEqual(srsReverse('srs', settings(), NOW), { kind: 'not-srs' });
  assert.deepEqual(['SRS0=', 'srs0-x', 'SRS1+x', 'SRS2=x', 'SRS0x', 'SRS'].map(isSrsLocalPart), [true, true, true, false, false, false]);
});

test('the channel keywords: only sourcesrs + destinationsrs + addresssrs together rewrite a copy, and only with a secret', () => {
  const on = { source: true, destination: true, address: true };
  const off = { source: false, destination: false, address: false };
  assert.equal(srsRequested({ source: on, destination: on, sender: on }), true);
  assert.equal(srsRequested({ source: off, destination: on, sender: on }), false); // came in from inside (tcp_intranet)
  assert.equal(srsRequested({ source: on, destination: off, sender: on }), false); // delivered here (l)
  assert.equal(srsRequested({ source: on, destination: on, sender: off }), false); // a local sender
  assert.equal(srsRequested({ source: on, destination: on, sender: undefined }), false); // <>
  const route = { source: on, destination: on, sender: on };
  const yes = senderForCopy('alice@orig.example', route, settings(), NOW);
  assert.deepEqual(yes, { rewrite: true, from: rewritten('alice@orig.example'), original: 'alice@orig.example' });
  assert.deepEqual(senderForCopy('alice@orig.example', route, null, NOW), { rewrite: false, from: 'alice@orig.example', reason: 'no SRS secret (etc/srs.secrets)' });
  assert.deepEqual(senderForCopy('alice@orig.example', { ...route, destination: off }, settings(), NOW), { rewrite: false, from: 'alice@orig.example', reason: 'the channels do not ask for SRS' });
  assert.equal(senderForCopy('', route, settings(), NOW).rewrite, false);
});

test('keygen: the new secret goes before the first secret, comments stay on top; a new file gets its header', () => {
  const fresh = withNewSecret('', 'NEW');
  assert.equal(fresh.secrets, 1);
  const lines = fresh.text.split('\n');
  assert.ok(lines.slice(0, fresh.line - 1).every((l) => l.startsWith('#')), fresh.text);
  assert.equal(lines[fresh.line - 1], 'NEW');
  const rotated = withNewSecret('# mine\n\nOLD1\nOLD2\n', 'NEW');
  assert.deepEqual(rotated, { text: '# mine\n\nNEW\nOLD1\nOLD2\n', line: 3, secrets: 3 });
  assert.deepEqual(withNewSecret('OLD\r\n', 'NEW'), { text: 'NEW\nOLD\n', line: 1, secrets: 2 });
});

test('copySenders: a copy of mail that came in on a sourcesrs channel, queued to a destinationsrs channel, from a sender outside (addresssrs) gets SRS; the sender is routed once', async () => {
  const { loadInstanceConfigOrThrow } = await import('../../src/config/load.js');
  const { compileRewriter } = await import('../../src/rewrite/index.js');
  const { copySenders } = await import('../../src/srs/index.js');
  const { makeInstance } = await import('../helpers/instance.js');
  const inst = makeInstance({
    files: {
      'etc/imta.cnf': 'example.com  $U%$D@localhost\n.  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp sourcesrs destinationsrs addresssrs\ntcp-daemon\n\ntcp_intranet smtp\ntcp-intranet\n',
      'etc/srs.secrets': `${SECRET}\n`,
    },
  });
  chmodSync(join(inst.root, 'etc/srs.secrets'), 0o600);
  try {
    const config = loadInstanceConfigOrThrow(inst.root);
    const compiled = compileRewriter(config.imta);
    let routed = 0;
    const rewriter = { rewrite: (a: string, c: Parameters<typeof compiled.rewrite>[1]) => (routed++, compiled.rewrite(a, c)) };
    const decide = (from: string, sourceChannel = 'tcp_local', s: SrsSettings | null = settings()) => copySenders({ channels: config.imta.channelByName, rewriter, settings: s, sourceChannel, from, now: NOW });
    const outside = decide('alice@orig.example');
    assert.equal(outside('tcp_local').from, rewritten('alice@orig.example'));
    assert.equal(outside('TCP_LOCAL').rewrite, true);
    assert.equal(outside('l').rewrite, false, 'delivered here: the sender is kept');
    assert.equal(routed, 1, 'the sender is routed once per message');
    assert.equal(decide('bob@example.com')('tcp_local').rewrite, false, 'a sender of ours keeps its address');
    assert.equal(decide('alice@orig.example', 'tcp_intranet')('tcp_local').rewrite, false, 'mail from a channel without sourcesrs');
    assert.equal(decide('')('tcp_local').from, '', 'the null sender');
    assert.equal(decide('alice@orig.example', 'tcp_local', null)('tcp_local').from, 'alice@orig.example', 'no secret: never rewritten');
  } finally {
    inst.remove();
  }
});
