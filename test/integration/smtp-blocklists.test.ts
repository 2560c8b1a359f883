// DNS blocklists in real SMTP sessions (the service in this process, dnsmasq on loopback as the
// lists' name server): a listed client is refused in place of the greeting with the list's TXT
// text and one J record naming the list; an unlisted client and an INTERNAL_IP client (listed or
// not) are greeted; a list whose server never answers holds up only the clients being checked, in
// parallel, for RBL_TIMEOUT, then lets them in (the default) or answers 421 (RBL_FAIL_CLOSED=1);
// an answer that is no listing (outside 127/8, the list's 127.255.255.x error) counts as unchecked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { EXTERNAL_IP, INTERNAL_IP, SERVER_IP, SmtpFixture, SmtpProbe } from './smtp-harness.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';

const LISTED_IP = '127.0.5.3';
const IMTA = `! blocklist test
local.test           $U%$D@localhost
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx spfnone noauthverify
tcp-daemon

tcp_intranet smtp mx
tcp_intranet-daemon
`;

let dns: Dnsmasq;
let silent: dgram.Socket;
const fixtures: SmtpFixture[] = [];

before(async () => {
  silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.16.54', () => resolve()));
  dns = await startDnsmasq({
    host: '127.0.16.53',
    lines: [
      'local=/bl.test/',
      'host-record=3.5.0.127.bl.test,127.0.0.2',
      'txt-record=3.5.0.127.bl.test,"Listed by bl.test, see http://bl.test/lookup?ip=127.0.5.3"',
      // the server itself, an INTERNAL_IP client: listed, never checked
      'host-record=1.5.0.127.bl.test,127.0.0.2',
      // answers that are no listing: an address outside 127/8 (a resolver rewriting NXDOMAIN), the list's error code
      'host-record=4.5.0.127.bl.test,198.51.100.7',
      'host-record=5.5.0.127.bl.test,127.255.255.254',
      `server=/dead.test/127.0.16.54#${(silent.address() as { port: number }).port}`,
    ],
  });
});

after(async () => {
  for (const f of fixtures) await f.stop();
  await dns?.close();
  silent?.close();
});

async function fixture(service: string): Promise<SmtpFixture> {
  const f = await SmtpFixture.start({ imta: IMTA, options: `DNS_SERVERS=${dns.server}\nDNS_TIMEOUT=5\nDNS_ATTEMPTS=1\n`, service });
  fixtures.push(f);
  return f;
}

async function greet(f: SmtpFixture, from: string): Promise<{ text: string | undefined; ms: number; probe: SmtpProbe }> {
  const started = performance.now();
  const probe = await SmtpProbe.connect(SERVER_IP, f.port, from);
  const r = await probe.reply(10_000);
  return { text: r?.text, ms: performance.now() - started, probe };
}

test('a listed client: 554 with the list’s TXT text, closed, one J record naming the list; others greeted', async () => {
  const f = await fixture('ENABLE_RBL=1\nDNS_VERIFY_DOMAIN=bl.test\n');
  const listed = await greet(f, LISTED_IP);
  assert.equal(listed.text, '554 5.7.1 access_control: host 127.0.5.3 found on DNS list bl.test: Listed by bl.test, see http://bl.test/lookup?ip=127.0.5.3');
  assert.ok(await listed.probe.waitClosed());
  const j = f.mailLog().filter((r) => r.event === 'J');
  assert.equal(j.length, 1);
  assert.equal(j[0]!.status, `rbl:bl.test: ${listed.text}`);
  for (const ip of [EXTERNAL_IP, INTERNAL_IP]) {
    const g = await greet(f, ip);
    assert.match(g.text ?? '', /^220 /, ip);
    g.probe.close();
  }
  assert.equal(f.mailLog().filter((r) => r.event === 'J').length, 1);
});

test('a list server that never answers: clients wait RBL_TIMEOUT in parallel, then are let in; internal clients go on meanwhile', async () => {
  const f = await fixture('ENABLE_RBL=1\nDNS_VERIFY_DOMAIN=dead.test\nRBL_TIMEOUT=1.5\n');
  const started = performance.now();
  const waiting = [greet(f, EXTERNAL_IP), greet(f, LISTED_IP)];
  // An internal client has a whole session meanwhile.
  const inside = await SmtpProbe.connect(SERVER_IP, f.port, INTERNAL_IP);
  await inside.hello();
  assert.equal((await inside.command('MAIL FROM:<a@local.test>'))?.code, 250);
  assert.equal((await inside.command('QUIT'))?.code, 221);
  const insideMs = performance.now() - started;
  const greeted = await Promise.all(waiting);
  for (const g of greeted) {
    assert.match(g.text ?? '', /^220 /);
    assert.ok(g.ms >= 1400 && g.ms < 3000, `greeted after the RBL deadline, not the DNS timeout, and not one after the other (${g.ms} ms)`);
    g.probe.close();
  }
  assert.ok(insideMs < 1400, `the internal client did not wait for the list (${insideMs} ms)`);
  assert.equal(f.mailLog().filter((r) => r.event === 'J').length, 0);
});

test('RBL_FAIL_CLOSED=1: a client that could not be checked gets 421 4.7.1, and a J record', async () => {
  const f = await fixture('ENABLE_RBL=1\nDNS_VERIFY_DOMAIN=dead.test\nRBL_TIMEOUT=1\nRBL_FAIL_CLOSED=1\n');
  const g = await greet(f, EXTERNAL_IP);
  assert.equal(g.text, '421 4.7.1 access_control: DNS list dead.test could not be checked for 127.0.5.2, try again later');
  assert.ok(await g.probe.waitClosed());
  assert.deepEqual(f.mailLog().map((r) => `${r.event} ${r.status}`), [`J rbl:dead.test: ${g.text}`]);
});

test('a list answering outside 127/8 or with its error code checked nothing: let in by default, 421 with RBL_FAIL_CLOSED=1', async () => {
  const open = await fixture('ENABLE_RBL=1\nDNS_VERIFY_DOMAIN=bl.test\n');
  const closed = await fixture('ENABLE_RBL=1\nDNS_VERIFY_DOMAIN=bl.test\nRBL_FAIL_CLOSED=1\n');
  for (const ip of ['127.0.5.4', '127.0.5.5']) {
    const g = await greet(open, ip);
    assert.match(g.text ?? '', /^220 /, ip);
    g.probe.close();
    const refused = await greet(closed, ip);
    assert.equal(refused.text, `421 4.7.1 access_control: DNS list bl.test could not be checked for ${ip}, try again later`);
    assert.ok(await refused.probe.waitClosed());
  }
  assert.equal(open.mailLog().filter((r) => r.event === 'J').length, 0);
  assert.equal(closed.mailLog().filter((r) => r.event === 'J').length, 2);
});
