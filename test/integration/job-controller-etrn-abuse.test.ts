// ETRN abuse (issue 13, item 2) on a running instance, with raw SMTP sessions: from outside
// INTERNAL_IP, ETRN for domains outside the fast-flush list answered "251 no messages waiting"
// and retried every deferred message of every channel (15 commands made 480 delivery attempts).
// Now, as Postfix does: such a domain gets `459 4.3.0 <domain>: service unavailable` and retries
// nothing (counted at the MX the deferred mail waits for); `ETRN #channel` only from
// ETRN_CHANNEL_ALLOW (INTERNAL_IP by default); ETRN_RATE_LIMIT per client address (458 beyond);
// and a flush does not count as a try of the mail it retried: attempts and schedule stay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, startSmtpPeer, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { waitFor } from '../helpers/instance.js';
import type { MtaInstance } from '../helpers/running-instance.js';
import { createEtrnInstance, etrn, jobController, mailLog, sendMail, startInstance } from './etrn-fixture.js';

const SERVER = '127.0.20.11';
/** Inside INTERNAL_IP (127.0.20.0/28). */
const INSIDE = '127.0.20.12';
/** Outside INTERNAL_IP. */
const OUTSIDE = '127.0.20.200';
const OTHER_OUTSIDE = '127.0.20.201';
const DNS = '127.0.20.53';
const MX = '127.0.20.21';
/** ETRN_RATE_LIMIT of this instance: per client address per minute. */
const RATE_LIMIT = 12;

let dns: SimDns;
let mx: SmtpPeer;
let mta: MtaInstance;

before(async () => {
  dns = await startDnsServer({
    host: DNS,
    records: {
      'far.test': { mx: [{ exchange: 'mx.far.test', preference: 10 }] },
      'mx.far.test': { a: [MX] },
    },
  });
  // The MX of the deferred mail is up but busy: every session is turned away with 421, and counted.
  mx = await startSmtpPeer({ host: MX, greetingReply: { code: 421, message: '4.3.2 busy, try later' } });
  mta = await createEtrnInstance({
    address: SERVER,
    dnsServer: dns.server,
    mxPort: mx.port,
    internalIp: '127.0.20.0/28',
    // No explicit rules to SMTP channels: the fast-flush list is empty (far.test goes by the catch-all).
    options: `ETRN_RATE_LIMIT=${RATE_LIMIT}`,
  });
  // The busy MX turns each session away with 421: no destination asking to slow down here
  // (etc/shaping.cnf), so every message tries it and counts the try.
  mta.inst.write('etc/shaping.cnf', 'THROTTLE_IGNORE=busy\n');
  await startInstance(mta);
});

after(async () => {
  await mta?.cleanup();
  await mx?.close();
  await dns?.close();
});

const deferrals = () => mailLog(mta).filter((r) => r.event === 'Q').length;

async function queued(): Promise<Array<{ id: string; attempts: number; next_attempt: string }>> {
  const r = await mta.imsimta(['qm', 'directory', '--json', 'tcp_local']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { id: string; attempts: number; next_attempt: string })
    .map(({ id, attempts, next_attempt }) => ({ id, attempts, next_attempt }));
}

async function nothingDue(): Promise<void> {
  const status = await jobController(mta, { op: 'status' });
  const tcp = (status?.channels as Record<string, { ready: number; inFlight: number }>).tcp_local!;
  assert.equal(tcp.ready + tcp.inFlight, 0, 'nothing made due');
}

test('five messages for far.test are deferred (its MX says 421), each tried once', async () => {
  await sendMail(
    mta,
    INSIDE,
    Array.from({ length: 5 }, (_, i) => ({ from: 'a@sender.test', to: [`user${i}@far.test`], subject: `far ${i}` })),
  );
  await waitFor(() => deferrals() === 5, { timeoutMs: 20_000, what: 'five deferrals' });
  const rows = await queued();
  assert.deepEqual(rows.map((r) => r.attempts), [1, 1, 1, 1, 1]);
  assert.ok(mx.connections.length >= 1);
});

test('ETRN abuse: 15 ETRN for domains outside the fast-flush list from outside INTERNAL_IP cause no delivery attempt', async () => {
  const connections = mx.connections.length;
  const replies: string[] = [];
  for (let i = 0; i < 15; i++) {
    const domain = i === 0 ? 'far.test' : `random${i}.example`;
    replies.push((await etrn(mta, i < 10 ? OUTSIDE : OTHER_OUTSIDE, domain)).text);
  }
  replies.forEach((text, i) => assert.equal(text, `459 4.3.0 <${i === 0 ? 'far.test' : `random${i}.example`}>: service unavailable`));
  await nothingDue();
  assert.equal(mx.connections.length, connections, 'no delivery attempt at the MX');
  assert.equal(deferrals(), 5, 'no message was retried');
});

test('ETRN abuse: #channel only from ETRN_CHANNEL_ALLOW (INTERNAL_IP by default)', async () => {
  const connections = mx.connections.length;
  const outside = await etrn(mta, OTHER_OUTSIDE, '#tcp_local');
  assert.match(outside.text, /^459 4\.7\.1 Node #tcp_local not allowed/);
  await nothingDue();
  assert.equal(mx.connections.length, connections);

  // From inside: the channel is retried, and the flush does not count as a try of what it could not deliver.
  const before = await queued();
  const inside = await etrn(mta, INSIDE, '#tcp_local');
  assert.equal(inside.text, '253 2.0.0 OK, 5 pending messages for node #tcp_local started');
  await waitFor(() => deferrals() === 10, { timeoutMs: 20_000, what: 'the five messages tried again' });
  assert.ok(mx.connections.length > connections, 'the MX was tried again');
  const after = await queued();
  assert.deepEqual(after, before, 'same try counts and next attempts as before the flush');
});

test('ETRN abuse: ETRN_RATE_LIMIT per client address; beyond it 458 and nothing happens; other clients are not held back', async () => {
  // OUTSIDE gave 10 ETRN in the test above (within this minute): two more are allowed, then 458.
  const codes: number[] = [];
  for (let i = 0; i < 4; i++) codes.push((await etrn(mta, OUTSIDE, `more${i}.example`)).code);
  assert.deepEqual(codes, [459, 459, 458, 458]);
  const limited = await etrn(mta, OUTSIDE, 'far.test');
  assert.match(limited.text, /^458 4\.7\.0 Unable to queue messages for node far\.test: too many ETRN requests/);
  await nothingDue();
  assert.equal((await etrn(mta, INSIDE, 'random.example')).code, 459, 'another address has its own count');
});
