// Traffic shaping (src/shaping), driven with explicit times: provider groups matched by MX
// suffix, slow start, the connection and per-connection limits, the rate bucket, backoff on a
// throttling reply and gradual recovery, leases that expire, live reconfiguration, forgetting
// idle destinations — and a simulated receiver that throttles, against which the limits hold and
// every message is delivered while another destination goes on unaffected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Shaper, ShapingPolicy, LocalShapingCounters, isThrottleReply, throttleRules, type ShapingState, type ConnectionLease } from '../../src/shaping/index.js';
import { shapingFamilies } from '../../src/metrics/shaping-families.js';
import { shapingStateText, shapingView } from '../../src/job-controller/shaping-view.js';
import { SHAPING_DEFAULTS, defaultShapingConfig, parseRate } from '../../src/config/shaping-cnf.js';
import type { ShapingConfig, ShapingLimits, ShapingSection } from '../../src/config/types.js';
import { formatExposition } from '../../src/metrics/exposition.js';

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

function limits(over: Partial<ShapingLimits> = {}): ShapingLimits {
  return { ...SHAPING_DEFAULTS, ...over };
}

function section(name: string, over: Omit<Partial<ShapingSection>, 'limits'> & { limits?: Partial<ShapingLimits> } = {}): ShapingSection {
  return { name, domains: [], domainSuffixes: [], mxHosts: [], mxSuffixes: [], scope: 'group', file: 'etc/shaping.cnf', line: 1, ...over, limits: limits(over.limits) };
}

function config(sections: ShapingSection[], defaults: Partial<ShapingLimits> = {}): ShapingConfig {
  return { file: 'etc/shaping.cnf', defaults: limits(defaults), sections };
}

const rate = (text: string) => parseRate(text) as NonNullable<ReturnType<typeof parseRate>> & object;

test('provider groups: every MX host under a suffix is one destination, so domains hosted there share it (and piggyback)', () => {
  const policy = new ShapingPolicy(
    config([
      section('gmail', { mxSuffixes: ['google.com', 'googlemail.com'] }),
      section('outlook', { mxSuffixes: ['mail.protection.outlook.com'] }),
      section('outlook-eu', { mxSuffixes: ['eur.mail.protection.outlook.com'] }),
      section('one-host', { mxHosts: ['mx.special.google.com'] }),
      section('big', { domains: ['big.example'] }),
      section('subs', { domainSuffixes: ['corp.example'] }),
      section('per-host', { mxSuffixes: ['yahoodns.net'], scope: 'host' }),
      section('per-domain', { mxSuffixes: ['mailhost.example'], scope: 'domain' }),
    ]),
  );
  const key = (domain: string, host: string) => policy.classify(domain, host).key;
  assert.equal(key('gmail.com', 'gmail-smtp-in.l.google.com'), 'gmail');
  assert.equal(key('customer.example', 'ASPMX.L.GOOGLE.COM.'), 'gmail', 'a Workspace domain on Google MX: the same destination, whatever the case');
  assert.equal(key('other.example', 'alt2.aspmx.l.googlemail.com'), 'gmail');
  assert.equal(key('x.example', 'notgoogle.com'), 'mx:notgoogle.com', 'a suffix matches at a label boundary only');
  assert.equal(key('x.example', 'x-eu.mail.protection.outlook.com'), 'outlook');
  assert.equal(key('x.example', 'x.eur.mail.protection.outlook.com'), 'outlook-eu', 'the longest suffix wins');
  assert.equal(key('x.example', 'mx.special.google.com'), 'one-host', 'an exact MX host beats a suffix');
  assert.equal(key('big.example', 'aspmx.l.google.com'), 'big', 'a DOMAIN section beats the MX host');
  assert.equal(key('sub.big.example', 'mx.big.example'), 'mx:mx.big.example', 'a plain DOMAIN is that domain only');
  assert.equal(key('a.corp.example', 'mx.corp.example'), 'subs', '*.corp.example: its subdomains');
  assert.equal(key('corp.example', 'mx.corp.example'), 'mx:mx.corp.example', '*.corp.example: not the parent itself');
  assert.equal(key('y.example', 'mta5.am0.yahoodns.net'), 'per-host/mx:mta5.am0.yahoodns.net');
  assert.equal(key('z.example', 'mx1.mailhost.example'), 'per-domain/domain:z.example');
  assert.equal(key('w.example', 'mx2.mailhost.example'), 'per-domain/domain:w.example');
  assert.equal(key('w.example', 'MX.W.Example'), 'mx:mx.w.example', 'no section: the MX host with the global limits');
  assert.equal(policy.classify('w.example', 'mx.w.example').class.section, null);
  assert.equal(policy.classify('gmail.com', 'x.google.com').class.limits.maxConnections, SHAPING_DEFAULTS.maxConnections);
});

test('slow start: INITIAL_CONNECTIONS at first, one more per message accepted, up to MAX_CONNECTIONS', () => {
  const shaper = new Shaper(config([section('dest', { domains: ['d.test'], limits: { initialConnections: 2, maxConnections: 8 } })]));
  const s = shaper.stateFor('d.test', 'mx.d.test', T0);
  const leases = openAll(s, T0);
  assert.equal(leases.length, 2, 'two connections at first');
  assert.equal(s.mayOpenConnection(T0), false);
  assert.equal(s.nextConnectionAt(T0), Infinity, 'until a connection closes or the window grows');
  assert.equal(s.snapshot(T0).phase, 'slow-start');
  for (const l of leases) deliver(s, l, T0);
  assert.equal(s.connectionWindow(), 4, 'each accepted message adds one');
  leases.push(...openAll(s, T0));
  assert.equal(leases.length, 4);
  for (const l of leases) deliver(s, l, T0);
  assert.equal(s.connectionWindow(), 8, 'at most MAX_CONNECTIONS');
  leases.push(...openAll(s, T0));
  assert.equal(leases.length, 8);
  for (let i = 0; i < 20; i++) deliver(s, leases[0]!, T0);
  assert.equal(s.connectionWindow(), 8);
  assert.equal(s.snapshot(T0).phase, 'steady');
  assert.equal(s.connectionOpened(T0), null);
  s.connectionClosed(leases[0]!, T0);
  s.connectionClosed(leases[0]!, T0); // twice: no effect
  assert.equal(s.snapshot(T0).connections, 7);
  assert.ok(s.connectionOpened(T0), 'a closed connection frees its slot');
  assert.equal(s.connectionOpened(T0), null);
});

test('MAX_CONNECTIONS holds whatever the window: the counters refuse the lease', () => {
  const counters = new LocalShapingCounters();
  const shaper = new Shaper(config([], { initialConnections: 3, maxConnections: 3 }), { counters });
  const s = shaper.stateFor('d.test', 'mx.d.test', T0);
  const leases = openAll(s, T0);
  assert.equal(leases.length, 3);
  assert.equal(counters.leasesHeld('mx:mx.d.test\0conn', T0), 3);
  for (const l of leases) s.connectionClosed(l, T0);
  assert.equal(counters.leasesHeld('mx:mx.d.test\0conn', T0), 0);
});

test('MAX_MESSAGES_PER_CONNECTION: the connection takes that many messages, then must close; the next one goes on', () => {
  const shaper = new Shaper(config([], { maxMessagesPerConnection: 3 }));
  const s = shaper.stateFor('d.test', 'mx.d.test', T0);
  const a = s.connectionOpened(T0)!;
  for (let i = 0; i < 3; i++) {
    assert.equal(s.mayStartMessage(a, T0), true);
    assert.equal(s.messageStarted(a, T0), true);
    s.messageSent(a, T0);
  }
  assert.equal(s.mayStartMessage(a, T0), false);
  assert.equal(s.messageStarted(a, T0), false);
  assert.equal(s.nextMessageAt(a, T0), Infinity, 'this connection is done');
  assert.equal(a.messages, 3);
  s.connectionClosed(a, T0);
  const b = s.connectionOpened(T0)!;
  assert.equal(s.messageStarted(b, T0), true);
  assert.equal(s.snapshot(T0).messagesStarted, 4);
});

test('MAX_MESSAGE_RATE: a GCRA bucket with MESSAGE_RATE_BURST (default: one second\'s worth), shared by all connections', () => {
  const shaper = new Shaper(
    config([
      section('slow', { domains: ['slow.test'], limits: { maxMessageRate: rate('60/min') } }),
      section('bursty', { domains: ['bursty.test'], limits: { maxMessageRate: rate('600/min') } }),
      section('burst3', { domains: ['burst3.test'], limits: { maxMessageRate: rate('6/min'), messageRateBurst: 3 } }),
    ]),
  );
  const slow = shaper.stateFor('slow.test', 'mx', T0);
  const [a, b] = [slow.connectionOpened(T0)!, slow.connectionOpened(T0)!];
  assert.equal(slow.messageStarted(a, T0), true);
  assert.equal(slow.messageStarted(b, T0), false, 'one a second, whichever connection asks');
  assert.equal(slow.nextMessageAt(b, T0), T0 + 1000);
  assert.equal(slow.nextMessageAt(null, T0 + 400), T0 + 1000);
  assert.equal(slow.messageStarted(b, T0 + 999), false);
  assert.equal(slow.messageStarted(b, T0 + 1000), true);
  assert.equal(slow.snapshot(T0 + 1000).allowedRate, 1);

  const bursty = shaper.stateFor('bursty.test', 'mx', T0);
  const c = bursty.connectionOpened(T0)!;
  let n = 0;
  while (bursty.messageStarted(c, T0)) n++;
  assert.equal(n, 10, '600/min: 10 at once');
  assert.equal(bursty.nextMessageAt(c, T0), T0 + 100);
  // A minute at full speed: 10 at once, then one every 100 ms.
  let t = T0;
  for (; t < T0 + 60_000; t += 10) while (bursty.messageStarted(c, t)) n++;
  assert.ok(n >= 609 && n <= 610, `${n} in a minute`);

  const burst3 = shaper.stateFor('burst3.test', 'mx', T0);
  const d = burst3.connectionOpened(T0)!;
  let m = 0;
  while (burst3.messageStarted(d, T0)) m++;
  assert.equal(m, 3);
  assert.equal(burst3.nextMessageAt(d, T0), T0 + 10_000);
});

test('MAX_CONNECTION_RATE spaces connection openings', () => {
  const shaper = new Shaper(config([], { maxConnectionRate: rate('2/s'), initialConnections: 5 }));
  const s = shaper.stateFor('d.test', 'mx', T0);
  assert.ok(s.connectionOpened(T0));
  assert.equal(s.mayOpenConnection(T0), false);
  assert.equal(s.connectionOpened(T0), null);
  assert.equal(s.snapshot(T0).connections, 1, 'a refused opening holds no slot');
  assert.equal(s.nextConnectionAt(T0), T0 + 500);
  assert.ok(s.connectionOpened(T0 + 500));
});

test('a 421 pauses the destination, halves its window and caps its rate; throttles during the pause are counted, not applied again', () => {
  const shaper = new Shaper(config([], { initialConnections: 8, maxConnections: 8, throttlePauseMs: 60_000, recoveryMs: 600_000 }));
  const s = shaper.stateFor('d.test', 'mx.d.test', T0);
  const leases = openAll(s, T0);
  assert.equal(leases.length, 8);
  // 100 messages in 10 s: 10 a second.
  let t = T0;
  for (let i = 0; i < 100; i++, t += 100) deliver(s, leases[i % 8]!, t);
  assert.equal(s.replyReceived(421, '421 4.7.0 Try again later, closing connection.', t), true);
  for (let i = 1; i < leases.length; i++) assert.equal(s.replyReceived(421, '4.7.0 Too many connections', t + 5), true);
  for (const l of leases) s.connectionClosed(l, t + 5);
  const snap = s.snapshot(t + 10);
  assert.equal(snap.phase, 'paused');
  assert.equal(snap.throttled, true);
  assert.equal(snap.pausedUntil, t + 60_000);
  assert.equal(snap.connectionWindow, 4, 'halved once, not once per connection that heard it');
  assert.equal(snap.throttles, 8);
  assert.deepEqual(snap.lastThrottle, { at: t + 5, reply: '421 4.7.0 Too many connections' });
  assert.equal(s.mayOpenConnection(t + 10), false);
  assert.equal(s.connectionOpened(t + 59_999), null);
  assert.equal(s.nextConnectionAt(t + 10), t + 60_000);
  assert.equal(s.nextMessageAt(null, t + 10), t + 60_000);
  assert.match(s.deferralStatus(t + 10), /^451 4\.4\.5 destination mx:mx\.d\.test throttled until .* \(traffic shaping, after: 421 4\.7\.0 Too many connections\)$/);
  // After the pause: half the rate that drew the throttle (about 10/s), climbing back.
  const after = t + 60_000;
  const a = s.connectionOpened(after)!;
  assert.ok(a, 'the pause is over');
  const start = s.snapshot(after).allowedRate!;
  assert.ok(start > 3 && start < 6, `rate cap after the pause: ${start}/s`);
  assert.equal(s.snapshot(after).phase, 'recovering');
  const midway = s.snapshot(after + 300_000).allowedRate!;
  assert.ok(midway > start && midway < 10.5, `halfway through RECOVERY_TIME: ${midway}/s`);
  assert.equal(s.snapshot(after + 600_000).allowedRate, null, 'no MAX_MESSAGE_RATE: the cap is lifted after RECOVERY_TIME');
  // The cap is enforced: with burst 1, two messages at once do not both go.
  assert.equal(s.messageStarted(a, after), true);
  assert.equal(s.messageStarted(a, after), false);
  assert.ok(s.nextMessageAt(a, after) > after);
});

test('a throttle before the destination recovered doubles the pause (up to THROTTLE_PAUSE_MAX); a full recovery starts over', () => {
  const shaper = new Shaper(config([], { initialConnections: 4, maxConnections: 4, throttlePauseMs: 10_000, throttlePauseMaxMs: 30_000, recoveryMs: 60_000, maxMessageRate: rate('10/s') }));
  const s = shaper.stateFor('d.test', 'mx', T0);
  let t = T0;
  const pauses: number[] = [];
  for (let i = 0; i < 4; i++) {
    s.replyReceived(421, 'too busy', t);
    const until = s.snapshot(t).pausedUntil!;
    pauses.push(until - t);
    t = until + 1000; // throttled again soon after each pause
  }
  assert.deepEqual(pauses, [10_000, 20_000, 30_000, 30_000]);
  assert.equal(s.connectionWindow(), 1, 'halved down to one');
  // Recovery: the rate climbs to MAX_MESSAGE_RATE and the window grows back with deliveries.
  const l = s.connectionOpened(t)!;
  const end = t + 70_000;
  while (t < end) {
    t = s.nextMessageAt(l, t);
    deliver(s, l, t);
  }
  assert.equal(s.snapshot(t).allowedRate, 10, 'back to MAX_MESSAGE_RATE');
  assert.equal(s.snapshot(t).phase, 'steady');
  assert.equal(s.connectionWindow(), 4);
  s.replyReceived(421, 'too busy', t);
  assert.equal(s.snapshot(t).pausedUntil! - t, 10_000, 'recovered: the first pause again');
});

test('which replies throttle: 421, and 4xx saying "too many", "rate limit", "throttled", "try again later" — not greylisting, too many recipients, 5xx or 2xx', () => {
  const rules = throttleRules(SHAPING_DEFAULTS.throttlePattern, SHAPING_DEFAULTS.throttleIgnore);
  const yes: Array<[number, string]> = [
    [421, '421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume'],
    [421, 'Service not available'],
    [450, '450 4.7.1 Too many connections from your IP'],
    [451, '451 4.7.500 Server busy. Please try again later from [192.0.2.1]'],
    [452, '452 4.2.1 Rate limit exceeded'],
    [450, '450 4.7.1 Message rate too high, slow down'],
    [451, '451 Throttled: sending rate exceeded'],
    [454, '454 4.7.1 ratelimited'],
  ];
  const no: Array<[number, string]> = [
    [450, '450 4.2.0 <a@b>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/ please try again later'],
    [421, '421 4.7.0 greylisted, try again later'],
    [452, '452 4.5.3 Too many recipients'],
    [452, '452 Too many recipients received this session'],
    [450, '450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages'],
    [452, '452 4.2.2 mailbox full'],
    [550, '550 5.7.1 Too many messages, rate limited'],
    [250, '250 2.0.0 OK too many'],
  ];
  for (const [code, text] of yes) assert.equal(isThrottleReply(code, text, rules), true, text);
  for (const [code, text] of no) assert.equal(isThrottleReply(code, text, rules), false, text);
  const custom = throttleRules('quota de connexions', '');
  assert.equal(isThrottleReply(451, '451 4.7.0 Quota de connexions atteint', custom), true);
  assert.equal(isThrottleReply(451, '451 4.7.0 too many connections', custom), false);
  assert.equal(isThrottleReply(421, '421 greylisted', custom), true, 'an empty THROTTLE_IGNORE ignores nothing');
  const only421 = throttleRules('', '');
  assert.equal(isThrottleReply(451, 'too many connections', only421), false, 'an empty THROTTLE_PATTERN: only 421');
  // A reply that does not throttle changes nothing.
  const s = new Shaper(defaultShapingConfig()).stateFor('d.test', 'mx', T0);
  assert.equal(s.replyReceived(452, '452 4.5.3 Too many recipients', T0), false);
  assert.equal(s.snapshot(T0).throttles, 0);
  assert.equal(s.mayOpenConnection(T0), true);
});

test('a destination under 421 does not hold back another, even one at the same provider under another section', () => {
  const shaper = new Shaper(config([section('gmail', { mxSuffixes: ['google.com'] }), section('outlook', { mxSuffixes: ['outlook.com'] })]));
  const g = shaper.stateFor('gmail.com', 'gmail-smtp-in.l.google.com', T0);
  const o = shaper.stateFor('hotmail.com', 'hotmail-com.olc.protection.outlook.com', T0);
  const other = shaper.stateFor('small.example', 'mx.small.example', T0);
  const gl = g.connectionOpened(T0)!;
  assert.equal(g.messageStarted(gl, T0), true);
  g.replyReceived(421, '421 4.7.28 rate limited', T0);
  assert.equal(g.mayStartMessage(gl, T0 + 1), false, 'paused on its open connection too');
  for (const s of [o, other]) {
    const l = s.connectionOpened(T0 + 1)!;
    assert.ok(l);
    assert.equal(s.messageStarted(l, T0 + 1), true);
    assert.equal(s.snapshot(T0 + 1).throttled, false);
  }
  assert.deepEqual(shaper.snapshot(T0 + 1, (s) => s.throttled).map((s) => s.destination), ['gmail']);
  assert.equal(shaper.stateFor('customer.example', 'aspmx.l.google.com', T0 + 1), g, 'another domain on Google MX shares the pause');
});

test('a connection lease that is neither renewed nor released expires, so a holder that died gives its slot back', () => {
  const counters = new LocalShapingCounters();
  const a = counters.acquireLease('k', 2, 1000, T0)!;
  const b = counters.acquireLease('k', 2, 1000, T0)!;
  assert.equal(counters.acquireLease('k', 2, 1000, T0), null);
  assert.equal(counters.renewLease('k', a, 1000, T0 + 900), true);
  assert.equal(counters.leasesHeld('k', T0 + 1000), 1, 'b expired, a was renewed');
  assert.equal(counters.renewLease('k', b, 1000, T0 + 1000), false);
  assert.ok(counters.acquireLease('k', 2, 1000, T0 + 1000));
  assert.equal(counters.idle('k', T0 + 1000), false);
  assert.equal(counters.idle('k', T0 + 5000), true);
});

test('reconfigure (a live edit of shaping.cnf): new limits for existing destinations, what was learnt kept within them', () => {
  const shaper = new Shaper(config([section('gmail', { mxSuffixes: ['google.com'], limits: { initialConnections: 10, maxConnections: 10 } })]));
  const g = shaper.stateFor('gmail.com', 'mx.google.com', T0);
  const leases = openAll(g, T0);
  assert.equal(leases.length, 10);
  g.replyReceived(421, 'slow down', T0);
  shaper.reconfigure(config([section('gmail', { mxSuffixes: ['google.com'], limits: { initialConnections: 2, maxConnections: 3, maxMessagesPerConnection: 7 } })]));
  assert.equal(shaper.stateFor('gmail.com', 'mx.google.com', T0), g, 'the same state');
  const snap = g.snapshot(T0 + 1);
  assert.equal(snap.limits.maxConnections, 3);
  assert.equal(snap.limits.maxMessagesPerConnection, 7);
  assert.equal(snap.connectionWindow, 3, 'window 5 after the throttle, within the new limit');
  assert.equal(snap.phase, 'paused', 'the pause is kept');
  // A section removed: its domains fall to the per-host defaults; the old state is an orphan until idle.
  shaper.reconfigure(config([]));
  assert.equal(shaper.stateFor('gmail.com', 'mx.google.com', T0).key, 'mx:mx.google.com');
});

test('idle destinations are forgotten by sweep(); busy, paused or recovering ones are kept', () => {
  const shaper = new Shaper(defaultShapingConfig(), { idleForgetMs: 60_000 });
  const busy = shaper.stateFor('a.test', 'mx.a.test', T0);
  busy.connectionOpened(T0);
  const paused = shaper.stateFor('b.test', 'mx.b.test', T0);
  paused.replyReceived(421, 'busy', T0);
  shaper.stateFor('c.test', 'mx.c.test', T0);
  assert.equal(shaper.size, 3);
  assert.equal(shaper.sweep(T0 + 30_000), 0, 'not idle long enough');
  assert.equal(shaper.sweep(T0 + 60_000), 1);
  assert.deepEqual(shaper.snapshot(T0 + 60_000).map((s) => s.destination), ['mx:mx.a.test', 'mx:mx.b.test']);
});

test('snapshots as metric families: one sample per destination', () => {
  const shaper = new Shaper(config([section('gmail', { mxSuffixes: ['google.com'], limits: { maxMessageRate: rate('100/min') } })]));
  const g = shaper.stateFor('gmail.com', 'mx.google.com', T0);
  const l = g.connectionOpened(T0)!;
  g.messageStarted(l, T0);
  g.replyReceived(421, 'x', T0);
  shaper.stateFor('a.test', 'mx.a.test', T0);
  // As the job controller reports them: the channel's fan-out status, its shaper's snapshots and what waits.
  const fanout = {
    tcp_local: {
      batches: 1,
      messages: 1,
      recipients: 3,
      hostsWaiting: 1,
      connections: { open: 1, busy: 1, idle: 0, limit: 1000 },
      destinations: [{ destination: 'gmail', hosts: ['mx.google.com'], waiting: 3, oldest: T0 - 30_000, deferred: 2 }],
      shaping: shaper.snapshot(T0 + 1),
    },
  };
  const rows = shapingView(fanout);
  assert.deepEqual(rows.map((r) => r.destination), ['gmail', 'mx:mx.a.test'], 'throttled first');
  assert.equal(shapingStateText(rows[0]!, T0 + 1), 'paused 60s');
  const text = formatExposition(shapingFamilies(rows, T0 + 1));
  assert.match(text, /^tsubame_shaping_connections\{channel="tcp_local",destination="gmail"\} 1$/m);
  assert.match(text, /^tsubame_shaping_throttled\{channel="tcp_local",destination="gmail"\} 1$/m);
  assert.match(text, /^tsubame_shaping_throttled\{channel="tcp_local",destination="mx:mx\.a\.test"\} 0$/m);
  assert.match(text, /^tsubame_shaping_messages_total\{channel="tcp_local",destination="gmail"\} 1$/m);
  assert.match(text, /^tsubame_shaping_waiting_recipients\{channel="tcp_local",destination="gmail"\} 3$/m);
  assert.match(text, /^tsubame_shaping_oldest_waiting_age_seconds\{channel="tcp_local",destination="gmail"\} 30\.001$/m);
  assert.match(text, /^tsubame_shaping_deferred_total\{channel="tcp_local",destination="gmail"\} 2$/m);
  assert.doesNotMatch(text, /allowed_message_rate\{channel="tcp_local",destination="mx:mx\.a\.test"\}/, 'no limit: no sample');
});

// ------------------------------------------------------------------ a simulated receiver

/**
 * A receiver that allows `maxConnections` at once (more get 421 at the greeting) and answers 421
 * to the message after `perConnection` on one connection. The sender delivers `total` messages
 * through the shaper in 10 ms steps of virtual time (a message per connection and step), as the engine would: open connections
 * while allowed and needed, start messages while allowed, close a connection that is done.
 */
function simulate(state: ShapingState, receiver: { maxConnections: number; perConnection: number }, total: number, untilMs = 3_600_000) {
  let pending = total;
  let t = T0;
  const open: Array<{ lease: ConnectionLease; served: number }> = [];
  const seen = { delivered: 0, throttled: 0, maxConcurrent: 0, connections: 0 };
  const close = (c: (typeof open)[number]) => {
    state.connectionClosed(c.lease, t);
    open.splice(open.indexOf(c), 1);
  };
  while (pending > 0 && t < T0 + untilMs) {
    while (open.length < pending && state.mayOpenConnection(t)) {
      const lease = state.connectionOpened(t);
      if (!lease) break;
      seen.connections++;
      if (open.length >= receiver.maxConnections) {
        seen.throttled++;
        state.replyReceived(421, '421 4.7.0 Too many concurrent connections', t, lease);
        state.connectionClosed(lease, t);
        break;
      }
      open.push({ lease, served: 0 });
      seen.maxConcurrent = Math.max(seen.maxConcurrent, open.length);
    }
    for (const c of [...open]) {
      if (pending === 0) break;
      if (state.nextMessageAt(c.lease, t) === Infinity) {
        close(c);
        continue;
      }
      if (!state.messageStarted(c.lease, t)) continue;
      if (c.served >= receiver.perConnection) {
        seen.throttled++;
        state.replyReceived(421, '421 4.7.0 Too many messages on this connection', t, c.lease);
        close(c);
        continue;
      }
      c.served++;
      pending--;
      seen.delivered++;
      state.messageSent(c.lease, t);
    }
    t += 10;
  }
  for (const c of [...open]) close(c);
  return { ...seen, pending, elapsedMs: t - T0 };
}

test('simulated receiver: with its limits configured (K connections, N messages each) nothing is refused and all is delivered', () => {
  const shaper = new Shaper(config([section('sink', { mxHosts: ['sink.test'], limits: { maxConnections: 3, maxMessagesPerConnection: 5, maxMessageRate: rate('50/s') } })]));
  const r = simulate(shaper.stateFor('a.test', 'sink.test', T0), { maxConnections: 3, perConnection: 5 }, 300);
  assert.equal(r.delivered, 300);
  assert.equal(r.throttled, 0);
  assert.equal(r.maxConcurrent, 3);
  assert.ok(r.connections >= 60 && r.connections <= 63, `300 messages, 5 per connection (and a few opened as the last ones left): ${r.connections}`);
  assert.ok(r.elapsedMs >= 4950 && r.elapsedMs <= 5200, `a burst of 50 (one second's worth), then 250 at 50/s: 5 s; took ${r.elapsedMs} ms`);
});

test('simulated receiver: without its limits configured, its 421s make the sender back off, and everything is still delivered', () => {
  const shaper = new Shaper(config([], { throttlePauseMs: 5_000, recoveryMs: 60_000 }));
  const s = shaper.stateFor('a.test', 'mx.sink.test', T0);
  const r = simulate(s, { maxConnections: 2, perConnection: 10 }, 500);
  assert.equal(r.delivered, 500);
  assert.ok(r.throttled > 0);
  assert.ok(r.throttled <= 6, `the window learns 2 connections, the connections learn 10 messages: ${r.throttled} refusals for 500 messages`);
  const snap = s.snapshot(T0 + r.elapsedMs);
  assert.equal(snap.throttles, r.throttled);
  assert.equal(snap.learntMessagesPerConnection, 10);
  assert.ok(r.elapsedMs < 600_000, `delivered in ${r.elapsedMs / 1000} s`);
});

function openAll(s: ShapingState, now: number): ConnectionLease[] {
  const out: ConnectionLease[] = [];
  for (let l = s.connectionOpened(now); l; l = s.connectionOpened(now)) out.push(l);
  return out;
}

function deliver(s: ShapingState, lease: ConnectionLease, now: number): void {
  assert.equal(s.messageStarted(lease, now), true);
  s.messageSent(lease, now);
}
