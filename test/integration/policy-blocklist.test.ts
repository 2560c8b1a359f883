// DNS blocklists against a real name server (dnsmasq on loopback): a listed IPv4 and IPv6 client
// with the list's TXT text in the refusal, a listing without TXT, answers that are no listing (the
// lists' own error answers, addresses outside 127/8: unchecked), the cache (positive and negative),
// and a list whose server never answers: the configured fail-open or fail-closed answer after RBL_TIMEOUT, while other checks go on meanwhile.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { RrsetLookup } from '../../src/dns/lookup.js';
import { checkBlocklists, blocklistQueryName, blocklistDecision, createInboundLookup } from '../../src/policy/index.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';

let dns: Dnsmasq;
let silent: dgram.Socket;
let silentQueries = 0;
const lookups: RrsetLookup[] = [];

const V6_CLIENT = '2001:db8::25';

before(async () => {
  // The list server that never answers: it reads the questions dnsmasq forwards and says nothing.
  silent = dgram.createSocket('udp4');
  silent.on('message', () => silentQueries++);
  await new Promise<void>((resolve) => silent.bind(0, '127.0.16.54', () => resolve()));
  const v6Name = blocklistQueryName(V6_CLIENT, 'bl.test')!;
  dns = await startDnsmasq({
    host: '127.0.16.53',
    lines: [
      'local=/test/',
      'host-record=2.0.0.127.bl.test,127.0.0.2',
      'txt-record=2.0.0.127.bl.test,"Listed by bl.test, see http://bl.test/lookup?ip=127.0.0.2"',
      `host-record=${v6Name},127.0.0.3`,
      `txt-record=${v6Name},"IPv6 listing"`,
      'host-record=3.0.0.127.bl.test,127.0.0.4',
      'host-record=4.0.0.127.bl.test,127.255.255.254',
      'host-record=6.0.0.127.bl.test,198.51.100.7',
      'host-record=5.0.0.127.other.test,127.0.0.10',
      'txt-record=5.0.0.127.other.test,"on the other list"',
      `server=/dead.test/127.0.16.54#${(silent.address() as { port: number }).port}`,
    ],
  });
});

after(async () => {
  for (const l of lookups) l.client.close();
  await dns?.close();
  silent?.close();
});

function lookup(timeoutSeconds = 1): RrsetLookup {
  const l = createInboundLookup({ raw: { DNS_TIMEOUT: String(timeoutSeconds), DNS_ATTEMPTS: '1' }, dnsServers: [dns.server] });
  lookups.push(l);
  return l;
}

test('a listed IPv4 client: the zone, the A code and the TXT text; refused with the text (554 at connect, 550 at MAIL)', async () => {
  const result = await checkBlocklists(lookup(), '127.0.0.2', ['bl.test'], { timeoutMs: 5000 });
  assert.deepEqual(result, { listed: true, zone: 'bl.test', code: '127.0.0.2', text: 'Listed by bl.test, see http://bl.test/lookup?ip=127.0.0.2' });
  const atConnect = blocklistDecision(result, { clientIp: '127.0.0.2', stage: 'connect', failClosed: false });
  assert.equal(atConnect.action, 'refuse');
  assert.equal(atConnect.reply, '554 5.7.1 access_control: host 127.0.0.2 found on DNS list bl.test: Listed by bl.test, see http://bl.test/lookup?ip=127.0.0.2');
  assert.match(atConnect.reason!, /DNS_VERIFY_DOMAIN bl\.test lists 127\.0\.0\.2 \(127\.0\.0\.2\)/);
  assert.match(blocklistDecision(result, { clientIp: '127.0.0.2', stage: 'mail', failClosed: false }).reply!, /^550 5\.7\.1 access_control: host 127\.0\.0\.2 found on DNS list bl\.test/);
});

test('an IPv6 client is looked up in nibble form; a listing without TXT says its code', async () => {
  assert.deepEqual(await checkBlocklists(lookup(), V6_CLIENT, ['bl.test'], { timeoutMs: 5000 }), { listed: true, zone: 'bl.test', code: '127.0.0.3', text: 'IPv6 listing' });
  const bare = await checkBlocklists(lookup(), '127.0.0.3', ['bl.test'], { timeoutMs: 5000 });
  assert.deepEqual(bare, { listed: true, zone: 'bl.test', code: '127.0.0.4', text: null });
  assert.match(blocklistDecision(bare, { clientIp: '127.0.0.3', stage: 'connect', failClosed: false }).reply!, /found on DNS list bl\.test: listed \(127\.0\.0\.4\)$/);
});

test('not listed (NXDOMAIN) accepts; answers are cached, positive and negative', async () => {
  const l = lookup();
  assert.deepEqual(await checkBlocklists(l, '127.0.0.9', ['bl.test', 'other.test'], { timeoutMs: 5000 }), { listed: false, unchecked: [] });
  assert.equal(blocklistDecision({ listed: false, unchecked: [] }, { clientIp: '127.0.0.9', stage: 'connect', failClosed: true }).action, 'accept');
  const asked = l.client.stats.queries;
  assert.equal(asked, 4, 'A and TXT per zone and address');
  assert.deepEqual(await checkBlocklists(l, '127.0.0.9', ['bl.test', 'other.test'], { timeoutMs: 5000 }), { listed: false, unchecked: [] });
  assert.deepEqual((await checkBlocklists(l, '127.0.0.2', ['bl.test'], { timeoutMs: 5000 })).listed, true);
  assert.equal(l.client.stats.queries, asked + 2, 'the negative answers came from the cache; only the new address was asked');
  await checkBlocklists(l, '127.0.0.2', ['bl.test'], { timeoutMs: 5000 });
  assert.equal(l.client.stats.queries, asked + 2, 'and so did the positive one');
});

test('an answer that is no listing (the list\'s 127.255.255.254, an address outside 127/8) checked nothing: unchecked, saying what came', async () => {
  const l = lookup();
  const error = await checkBlocklists(l, '127.0.0.4', ['bl.test'], { timeoutMs: 5000 });
  assert.deepEqual(error, { listed: false, unchecked: [{ zone: 'bl.test', reason: "answered 127.255.255.254, the list's error answer" }] });
  const outside = await checkBlocklists(l, '127.0.0.6', ['bl.test', 'other.test'], { timeoutMs: 5000 });
  assert.deepEqual(outside, { listed: false, unchecked: [{ zone: 'bl.test', reason: 'answered 198.51.100.7, outside 127.0.0.0/8' }] });
  const open = blocklistDecision(outside, { clientIp: '127.0.0.6', stage: 'connect', failClosed: false });
  assert.equal(open.action, 'accept');
  assert.equal(open.reason, 'DNS_VERIFY_DOMAIN bl.test (answered 198.51.100.7, outside 127.0.0.0/8) not checked for 127.0.0.6: accepted (RBL_FAIL_CLOSED=0)');
  assert.match(blocklistDecision(outside, { clientIp: '127.0.0.6', stage: 'connect', failClosed: true }).reply!, /^421 4\.7\.1 access_control: DNS list bl\.test could not be checked/);
});

test('the second zone lists the client: found in parallel with the first', async () => {
  const result = await checkBlocklists(lookup(), '127.0.0.5', ['bl.test', 'other.test'], { timeoutMs: 5000 });
  assert.deepEqual(result, { listed: true, zone: 'other.test', code: '127.0.0.10', text: 'on the other list' });
});

test('a list server that never answers: fail open (accept and log) or closed (421/451) at RBL_TIMEOUT; other checks are not held up meanwhile', async () => {
  const l = lookup(3); // each DNS try waits 3 s; the blocklist deadline is shorter
  const before = silentQueries;
  const started = Date.now();
  let deadDone = 0;
  const dead = checkBlocklists(l, '127.0.0.7', ['dead.test'], { timeoutMs: 1200 }).then((r) => {
    deadDone = Date.now();
    return r;
  });
  // While it waits: twenty other clients on the live list, and one client on both lists that the live one lists.
  const others = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => checkBlocklists(l, `127.0.1.${i + 1}`, ['bl.test'], { timeoutMs: 5000 }).then((r) => ({ r, at: Date.now() }))),
    checkBlocklists(l, '127.0.0.2', ['dead.test', 'bl.test'], { timeoutMs: 5000 }).then((r) => ({ r, at: Date.now() })),
  ]);
  assert.equal(deadDone, 0, 'every other check finished while the dead list was still being waited for');
  assert.ok(others.slice(0, 20).every((o) => !o.r.listed && o.r.unchecked.length === 0));
  assert.deepEqual(others[20]!.r, { listed: true, zone: 'bl.test', code: '127.0.0.2', text: 'Listed by bl.test, see http://bl.test/lookup?ip=127.0.0.2' }, 'a listing does not wait for a dead zone');

  const result = await dead;
  const waited = deadDone - started;
  assert.ok(waited >= 1100 && waited < 2900, `answered at the RBL deadline, not the DNS timeout (${waited} ms)`);
  assert.deepEqual(result, { listed: false, unchecked: [{ zone: 'dead.test', reason: 'timeout' }] });
  assert.ok(silentQueries > before, 'the questions did reach the silent server');
  const open = blocklistDecision(result, { clientIp: '127.0.0.7', stage: 'connect', failClosed: false });
  assert.equal(open.action, 'accept');
  assert.match(open.reason!, /DNS_VERIFY_DOMAIN dead\.test \(timeout\) not checked for 127\.0\.0\.7: accepted/);
  const closed = blocklistDecision(result, { clientIp: '127.0.0.7', stage: 'connect', failClosed: true });
  assert.equal(closed.reply, '421 4.7.1 access_control: DNS list dead.test could not be checked for 127.0.0.7, try again later');
  assert.equal(blocklistDecision(result, { clientIp: '127.0.0.7', stage: 'rcpt', failClosed: true }).smtpCode, 451);
});
