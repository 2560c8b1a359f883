// Traffic shaping (etc/shaping.cnf) in the SMTP channel's fan-out, against receivers of the
// simulated internet that enforce limits of their own: one answers 421 after N messages on a
// connection, one allows only K connections at once (more are greeted with 421), one is slow to
// answer DATA so that the fan-out would want more connections to it. The receivers' counts show
// that the configured limits held and the mail was delivered; a destination that answers 421 is
// paused (what waits for it deferred untried), learns its messages per connection, and does not
// hold back the other destinations of the same batch.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSmtpJobWith, type SmtpChannelJob } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import { parseShapingCnf } from '../../src/config/shaping-cnf.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeChannelShaper } from '../../src/shaping/index.js';
import type { MessageOutcome } from '../../src/channels/types.js';
import { startDnsServer, startSmtpPeers, type DnsTable, type SmtpPeer, type PeerOptions } from '../helpers/sim-internet.js';
import { makeChannel, makeConfig, Spool } from './delivery-fixtures.js';
import { waitFor } from '../helpers/instance.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface World {
  peers: SmtpPeer[];
  spool: Spool;
  job: SmtpChannelJob;
}

/** DNS with `domain → mx.domain` for each peer's domain, the peers, and a channel job shaped by `shapingCnf`. */
async function world(dnsHost: string, hosts: Array<{ domain: string; peer: Omit<PeerOptions, 'port'> }>, shapingCnf: string): Promise<World> {
  const records: DnsTable = {};
  for (const h of hosts) {
    records[h.domain] = { mx: [{ exchange: `mx.${h.domain}`, preference: 10 }] };
    records[`mx.${h.domain}`] = { a: [h.peer.host] };
  }
  const dns = await startDnsServer({ host: dnsHost, records });
  cleanups.push(() => dns.close());
  const started = await startSmtpPeers(hosts.map((h) => h.peer));
  cleanups.push(() => Promise.all(started.peers.map((p) => p.close())).then(() => {}));
  const spool = new Spool();
  cleanups.push(() => spool.remove());
  const file = join(spool.root, 'shaping.cnf');
  writeFileSync(file, shapingCnf);
  const diagnostics: Diagnostic[] = [];
  const shaping = parseShapingCnf(file, diagnostics);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), [], 'the test shaping.cnf is valid');
  const channel = makeChannel({ port: started.port, maxClientConnections: 100 });
  const config = { ...makeConfig(spool.root, { dnsServers: [dns.server], raw: { SMTP_IDLE_TIMEOUT: '5', DNS_TIMEOUT: '0.5', DNS_ATTEMPTS: '1' }, channels: [channel] }), shaping };
  const job = createSmtpJobWith(spool.context(config, channel), {
    dnsCache: new DnsCache(),
    reachability: new ReachabilityCache(),
    shaper: makeChannelShaper(config, channel.name),
  });
  cleanups.push(() => job.close());
  return { peers: started.peers, spool, job };
}

function outcomesOf(outcomes: MessageOutcome[]) {
  return outcomes.flatMap((o) => o.recipients);
}

test('shaping.cnf limits hold at the receivers: MAX_MESSAGES_PER_CONNECTION under a receiver that says 421 after 3, MAX_CONNECTIONS under one that allows 2; all delivered, no 421 heard', async () => {
  const w = await world(
    '127.6.40.53',
    [
      { domain: 'capped.test', peer: { host: '127.6.40.1', messagesPerConnection: 3 } },
      // Slow to answer DATA: the fan-out would give it more connections than two.
      { domain: 'narrow.test', peer: { host: '127.6.40.2', maxConnections: 2, dataDelayMs: 150 } },
    ],
    ['[DESTINATION=capped]', 'MX_HOST=mx.capped.test', 'MAX_MESSAGES_PER_CONNECTION=3', '', '[DESTINATION=narrow]', 'MX_HOST=mx.narrow.test', 'MAX_CONNECTIONS=2', 'INITIAL_CONNECTIONS=2', ''].join('\n'),
  );
  const [capped, narrow] = w.peers as [SmtpPeer, SmtpPeer];
  const items = Array.from({ length: 20 }, (_, i) => w.spool.message('owner@sim.test', [`u${i}@capped.test`, `u${i}@narrow.test`]));
  const outcomes = outcomesOf(await w.job.deliver(items));
  assert.equal(outcomes.length, 40);
  assert.deepEqual(
    outcomes.filter((r) => r.result !== 'delivered').map((r) => `${r.address}: ${r.status}`),
    [],
    'every recipient delivered in the one batch (no 421, no shaping deferral)',
  );
  assert.equal(capped.deliveredRecipients().length, 20);
  assert.ok(capped.connections.every((c) => c.mails <= 3), `at most 3 messages per connection: ${capped.connections.map((c) => c.mails).join(',')}`);
  assert.ok(capped.connections.length >= 7, 'a new connection after every third message');
  assert.equal(narrow.deliveredRecipients().length, 20);
  assert.ok(narrow.maxConcurrent <= 2, `at most 2 connections at once to the narrow host (saw ${narrow.maxConcurrent})`);
  assert.ok(narrow.connections.every((c) => c.greetedAt !== null), 'no connection turned away');
  const shaping = w.job.status().shaping;
  assert.deepEqual(
    shaping.map((s) => [s.destination, s.throttles]),
    [
      ['capped', 0],
      ['narrow', 0],
    ],
  );
});

test('a receiver that says 421 after 3 messages: its destination pauses (what waits is deferred untried), learns 3 per connection, and the calm destination of the same batch is not held back', async () => {
  const w = await world(
    '127.6.41.53',
    [
      { domain: 'capped.test', peer: { host: '127.6.41.1', messagesPerConnection: 3 } },
      { domain: 'calm.test', peer: { host: '127.6.41.2' } },
    ],
    // Nothing configured for capped.test: it must learn. Short pauses and recovery for the test.
    ['THROTTLE_PAUSE=1', 'THROTTLE_PAUSE_MAX=2', 'RECOVERY_TIME=1', ''].join('\n'),
  );
  const [capped, calm] = w.peers as [SmtpPeer, SmtpPeer];
  const N = 12;
  const first = outcomesOf(await w.job.deliver(Array.from({ length: N }, (_, i) => w.spool.message('owner@sim.test', [`u${i}@capped.test`, `u${i}@calm.test`]))));
  const calmOutcomes = first.filter((r) => r.address.endsWith('@calm.test'));
  assert.ok(
    calmOutcomes.every((r) => r.result === 'delivered'),
    calmOutcomes.map((r) => r.status).join('\n'),
  );
  // An MX host no section names is shaped by its address (and port: the peers listen on one of their own).
  const pausedAt = w.job.status().shaping.find((s) => s.destination.startsWith('mx:127.6.41.1:'));
  assert.ok(pausedAt?.throttles && pausedAt.throttles >= 1, 'the 421 throttled the destination');
  // The calm destination got all its mail before the capped one's pause ended.
  const pauseEnd = pausedAt.lastThrottle!.at + 1000;
  assert.ok(
    calm.transactions.every((t) => t.receivedAt < pauseEnd),
    'calm.test was not held back',
  );
  const cappedFirst = first.filter((r) => r.address.endsWith('@capped.test'));
  assert.equal(cappedFirst.filter((r) => r.result === 'delivered').length, 3, 'three went before the 421');
  const untried = cappedFirst.filter((r) => r.result === 'deferred' && r.notTriedUntil !== undefined);
  assert.ok(untried.length >= N - 4, `the ones waiting were deferred untried (${untried.length})`);
  assert.match(untried[0]!.status, /^451 4\.4\.5 destination mx:127\.6\.41\.1:\d+ throttled until .* \(traffic shaping, after: 421 4\.7\.0 Too many messages/);

  // The job controller would try them again once the pause is over: the destination's second
  // throttle after 3 messages teaches it 3 per connection, and the rest goes without a 421.
  let left = cappedFirst.filter((r) => r.result !== 'delivered').map((r) => r.address);
  const deadline = Date.now() + 30_000;
  while (left.length && Date.now() < deadline) {
    const until = Math.max(...w.job.status().shaping.map((s) => s.pausedUntil ?? 0));
    if (until > Date.now()) await waitFor(() => Date.now() >= until, { timeoutMs: 5000, what: 'the pause to end' });
    const again = outcomesOf(await w.job.deliver(left.map((a) => w.spool.message('owner@sim.test', [a]))));
    left = again.filter((r) => r.result !== 'delivered').map((r) => r.address);
  }
  assert.deepEqual(left, [], 'every capped.test recipient delivered in the end');
  assert.deepEqual(capped.deliveredRecipients().sort(), Array.from({ length: N }, (_, i) => `u${i}@capped.test`).sort(), 'each exactly once');
  const learnt = w.job.status().shaping.find((s) => s.destination.startsWith('mx:127.6.41.1:'))!;
  assert.equal(learnt.learntMessagesPerConnection, 3);
  assert.ok(capped.connections.every((c) => c.mails <= 4), 'never more than the 421 on a connection');
  const last = capped.connections.at(-1)!;
  assert.ok(last.mails <= 3, 'once learnt, a connection carries 3 and closes');
});
