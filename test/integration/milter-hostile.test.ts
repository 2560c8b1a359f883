// Filters that are down, talk garbage, close mid-body, never answer or announce a huge packet:
// the session gives the default action as the verdict (tempfail unless configured otherwise),
// never throws, never waits past its timeouts, and leaves no socket open behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitMessage } from '../../src/common/rfc5322-header.js';
import { MilterSession, type ClientInfo, type MilterVerdict } from '../../src/milter/session.js';
import { milterSettings, type DefaultAction, type FilterSpec, type FilterTimeouts } from '../../src/milter/settings.js';
import { encodePacket, MTA_ACTIONS, SMFIP } from '../../src/milter/protocol.js';
import { startFakeMilter, standardFilter } from '../helpers/fake-milter.js';
import { freePort, waitFor } from '../helpers/instance.js';

const client: ClientInfo = { hostname: 'mx.example.org', clientAddress: '192.0.2.9', clientPort: 2525, clientName: null };
const settingsFor = (spec: FilterSpec, more: { timeouts?: Partial<FilterTimeouts>; defaultAction?: DefaultAction } = {}) =>
  milterSettings([spec], { defaultAction: more.defaultAction, timeouts: { connectMs: 2000, commandMs: 3000, contentMs: 3000, ...more.timeouts } });
const message = (body: string) => {
  const { fields, body: b } = splitMessage(`From: a@example.com\r\nSubject: x\r\n\r\n${body}`);
  return { headers: fields, body: Buffer.from(b, 'latin1') };
};
const TEMPFAIL = { code: 451, enhanced: '4.7.1', lines: ['Service unavailable - try again later'] };

function assertDefault(v: MilterVerdict | { kind: string }, filter: string, detail: RegExp): void {
  assert.equal(v.kind, 'tempfail', JSON.stringify(v));
  const t = v as { reply: unknown; filter: string; byDefault: boolean; detail: string | null };
  assert.deepEqual(t.reply, TEMPFAIL);
  assert.equal(t.filter, filter);
  assert.equal(t.byDefault, true);
  assert.match(t.detail ?? '', detail);
}

/** Drives a whole transaction; every stage must resolve (never throw). */
async function everyStage(m: MilterSession) {
  return {
    helo: await m.helo('client.example'),
    mail: await m.mail('a@example.com'),
    rcpt: await m.rcpt('b@example.org'),
    data: await m.data(),
    message: (await m.message(message('hello\r\n'))).verdict,
  };
}

test('a filter that is down: tempfail at every stage by default; accept, reject, shutdown, quarantine when configured', async () => {
  const port = await freePort();
  const spec: FilterSpec = { name: `inet:127.0.0.1:${port}`, address: { kind: 'inet', host: '127.0.0.1', port } };
  const m = await MilterSession.open(settingsFor(spec), client);
  assertDefault(m.connectVerdict, spec.name, /connect failed: .*ECONNREFUSED/);
  for (const v of Object.values(await everyStage(m))) assertDefault(v, spec.name, /ECONNREFUSED/);
  m.close();

  const accept = await MilterSession.open(settingsFor(spec, { defaultAction: 'accept' }), client);
  assert.deepEqual(accept.connectVerdict, { kind: 'continue' });
  for (const v of Object.values(await everyStage(accept))) assert.deepEqual(v, { kind: 'continue' });
  accept.close();

  const reject = await MilterSession.open(settingsFor(spec, { defaultAction: 'reject' }), client);
  assert.deepEqual(reject.connectVerdict.kind === 'reject' && reject.connectVerdict.reply, { code: 550, enhanced: '5.5.0', lines: ['Service unavailable'] });
  reject.close();

  const shutdown = await MilterSession.open(settingsFor({ ...spec, defaultAction: 'shutdown' }), client);
  assert.equal(shutdown.connectVerdict.kind, 'shutdown');
  shutdown.close();

  const hold = await MilterSession.open(settingsFor(spec, { defaultAction: 'quarantine' }), client);
  const stages = await everyStage(hold);
  assert.deepEqual(hold.connectVerdict, { kind: 'continue' });
  assert.deepEqual(stages.rcpt, { kind: 'continue' });
  assert.deepEqual(stages.message, { kind: 'quarantine', reason: 'default_action', filter: spec.name, byDefault: true, detail: stages.message.kind === 'quarantine' ? stages.message.detail : null });
  hold.close();
});

test('a filter that answers garbage: the default action, and its socket is closed', async () => {
  // An HTTP answer: its first four bytes read as a length of 1.2 GB.
  const http = await startFakeMilter(async (c) => {
    await c.negotiate();
    await c.until('connect');
    c.sendRaw(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await c.closed;
  });
  // Well framed, but an answer that does not exist.
  const unknown = await startFakeMilter(async (c) => {
    await c.negotiate();
    await c.until('connect');
    c.send({ type: 'continue' });
    await c.until('helo');
    c.sendRaw(encodePacket('Z', Buffer.from('??')));
    await c.closed;
  });
  // A negotiation from another protocol version.
  const version = await startFakeMilter(async (c) => {
    await c.negotiate({ version: 7 });
    await c.closed;
  });
  // A negotiation asking for more than this MTA can do.
  const actions = await startFakeMilter(async (c) => {
    await c.negotiate({ actions: MTA_ACTIONS | (1 << 12) });
    await c.closed;
  });
  // A reply code that is not an SMTP refusal.
  const reply = await startFakeMilter(async (c) => {
    await c.negotiate();
    await c.until('connect');
    c.sendRaw(encodePacket('y', Buffer.from('250 2.0.0 fine\0')));
    await c.closed;
  });
  try {
    const cases: Array<[typeof http, RegExp, 'connect' | 'helo']> = [
      [http, /packet length 1213486160 exceeds 1048576/, 'connect'],
      [unknown, /unknown answer 'Z'/, 'helo'],
      [version, /protocol version 7/, 'connect'],
      [actions, /asks for actions 0x11ff/, 'connect'],
      [reply, /malformed reply "250 2.0.0 fine"/, 'connect'],
    ];
    for (const [f, detail, stage] of cases) {
      const m = await MilterSession.open(settingsFor(f.spec), client);
      const v = stage === 'connect' ? m.connectVerdict : await m.helo('x');
      assertDefault(v, f.spec.name, detail);
      // The MTA closed its side without waiting for close().
      await f.connections[0]!.closed;
      // Sticky: later stages get the same answer without talking to the filter.
      assertDefault(await m.mail('a@example.com'), f.spec.name, detail);
      m.close();
    }
  } finally {
    for (const f of [http, unknown, version, actions, reply]) await f.close();
  }
});

test('a filter that closes its socket in the middle of the body: tempfail, no exception', async () => {
  let chunks = 0;
  const f = await startFakeMilter(
    standardFilter({
      answer: (cmd, c) => {
        if (cmd.type === 'body' && ++chunks === 2) {
          c.socket.destroy();
          return { type: 'continue' };
        }
        return null;
      },
    }),
  );
  const m = await MilterSession.open(settingsFor(f.spec), client);
  try {
    await m.helo('x');
    await m.mail('a@example.com');
    await m.rcpt('b@example.org');
    await m.data();
    const r = await m.message(message(('y'.repeat(998) + '\r\n').repeat(300))); // 300 kB: five chunks
    assertDefault(r.verdict, f.spec.name, /event 'B' \(0x42\): (connection closed by the filter|.*ECONNRESET|.*EPIPE)/);
    assert.deepEqual(r.modifications, []);
    assert.equal(chunks, 2);
    // The next message gets the same (the filter is gone for this connection).
    assertDefault(await m.mail('c@example.com'), f.spec.name, /event 'B'/);
  } finally {
    m.close();
    await f.close();
  }
});

test('a filter that never answers: the command timeout, then the content timeout; progress keeps it alive', async () => {
  const silentAtConnect = await startFakeMilter(async (c) => {
    await c.negotiate();
    await c.closed;
  });
  const silentAtEnd = await startFakeMilter(standardFilter({ eom: () => [] }));
  const slowButAlive = await startFakeMilter(
    standardFilter({
      eom: (_n, c) => {
        // Twelve progress packets, 150 ms apart (1.8 s in all, past the 1 s content timeout), then accept.
        let i = 0;
        const timer = setInterval(() => {
          c.send(i++ < 12 ? { type: 'progress' } : { type: 'accept' });
          if (i > 12) clearInterval(timer);
        }, 150);
        return [];
      },
    }),
  );
  try {
    let t0 = Date.now();
    const a = await MilterSession.open(settingsFor(silentAtConnect.spec, { timeouts: { commandMs: 300 } }), client);
    const waited = Date.now() - t0;
    assertDefault(a.connectVerdict, silentAtConnect.spec.name, /event 'C' \(0x43\): no answer within 300 ms/);
    assert.ok(waited >= 290 && waited < 5000, `waited ${waited} ms`);
    await silentAtConnect.connections[0]!.closed;
    a.close();

    const b = await MilterSession.open(settingsFor(silentAtEnd.spec, { timeouts: { commandMs: 5000, contentMs: 300 } }), client);
    await b.helo('x');
    await b.mail('a@example.com');
    await b.rcpt('b@example.org');
    await b.data();
    t0 = Date.now();
    const r = await b.message(message('hi\r\n'));
    assertDefault(r.verdict, silentAtEnd.spec.name, /event 'E' \(0x45\): no answer within 300 ms/);
    assert.ok(Date.now() - t0 < 5000);
    await silentAtEnd.connections[0]!.closed;
    b.close();

    const c = await MilterSession.open(settingsFor(slowButAlive.spec, { timeouts: { contentMs: 1000 } }), client);
    await c.helo('x');
    await c.mail('a@example.com');
    await c.rcpt('b@example.org');
    await c.data();
    assert.deepEqual((await c.message(message('hi\r\n'))).verdict, { kind: 'continue' });
    c.close();
  } finally {
    for (const f of [silentAtConnect, silentAtEnd, slowButAlive]) await f.close();
  }
});

test('progress without end: the wait is given up after ten timeouts’ worth', async () => {
  const timers: NodeJS.Timeout[] = [];
  const f = await startFakeMilter(
    standardFilter({
      eom: (_n, c) => {
        timers.push(setInterval(() => c.send({ type: 'progress' }), 25));
        return [];
      },
    }),
  );
  try {
    // Progress every 25 ms against a 400 ms timeout: given up after 4 s.
    const m = await MilterSession.open(settingsFor(f.spec, { timeouts: { contentMs: 400 } }), client);
    await m.helo('x');
    await m.mail('a@example.com');
    await m.rcpt('b@example.org');
    await m.data();
    const t0 = Date.now();
    const r = await m.message(message('hi\r\n'));
    const waited = Date.now() - t0;
    assertDefault(r.verdict, f.spec.name, /still in progress after 4000 ms|no answer within/);
    assert.ok(waited >= 3900 && waited < 10_000, `waited ${waited} ms`);
    m.close();
  } finally {
    for (const t of timers) clearInterval(t);
    await f.close();
  }
});

test('an oversized packet length is refused at once, not waited for', async () => {
  const f = await startFakeMilter(async (c) => {
    await c.negotiate();
    await c.until('connect');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(0x7fffffff);
    c.sendRaw(Buffer.concat([len, Buffer.from('h')]));
    await c.closed;
  });
  try {
    const t0 = Date.now();
    const m = await MilterSession.open(settingsFor(f.spec, { timeouts: { commandMs: 20_000 } }), client);
    assertDefault(m.connectVerdict, f.spec.name, /packet length 2147483647 exceeds 1048576/);
    assert.ok(Date.now() - t0 < 10_000);
    await f.connections[0]!.closed;
    m.close();
  } finally {
    await f.close();
  }
});

test('a filter that stops reading: the body write times out; nothing stays open', async () => {
  // No reply to headers or body chunks: the MTA writes the body without waiting, into a filter
  // that has stopped reading, until the socket buffers are full.
  const f = await startFakeMilter(
    standardFilter({
      optneg: { protocol: SMFIP.NR_HDR | SMFIP.NR_EOH | SMFIP.NR_BODY },
      answer: (cmd, c) => {
        if (cmd.type === 'eoh') c.socket.pause();
        return null;
      },
    }),
  );
  try {
    const m = await MilterSession.open(settingsFor(f.spec, { timeouts: { contentMs: 400 } }), client);
    await m.helo('x');
    await m.mail('a@example.com');
    await m.rcpt('b@example.org');
    await m.data();
    const t0 = Date.now();
    let produced = 0;
    const body = () =>
      (async function* () {
        for (; produced < 400; produced++) yield Buffer.alloc(64 * 1024, 0x7a); // up to 25 MiB, far past any socket buffer
      })();
    const { fields } = splitMessage('Subject: big\r\n\r\n');
    const r = await m.message({ headers: fields, body });
    assertDefault(r.verdict, f.spec.name, /write timed out after 400 ms/);
    assert.ok(Date.now() - t0 < 10_000);
    assert.ok(produced < 400, 'the body was not read further once the filter stopped');
    m.close();
    f.connections[0]!.socket.resume();
    await f.connections[0]!.closed;
  } finally {
    await f.close();
  }
});

test('close() in the middle of a message: the call resolves and the filter sees the socket close', async () => {
  const f = await startFakeMilter(standardFilter({ eom: () => [] }));
  try {
    const m = await MilterSession.open(settingsFor(f.spec, { timeouts: { contentMs: 60_000 } }), client);
    await m.helo('x');
    await m.mail('a@example.com');
    await m.rcpt('b@example.org');
    await m.data();
    const pending = m.message(message('hi\r\n'));
    // Wait until the filter has the end of the message, then close from the MTA's side.
    await waitFor(() => f.connections[0]!.received.some((x) => x.type === 'eob'), { what: 'the end of the message at the filter', intervalMs: 10 });
    const t0 = Date.now();
    m.close();
    const r = await pending;
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(r.verdict.kind, 'tempfail');
    await f.connections[0]!.closed;
    // After close(), nothing is sent any more, nothing throws, and nothing passes unfiltered.
    const after = await m.mail('x@example.com');
    assert.equal(after.kind, 'tempfail');
    assert.match((after as { detail: string }).detail, /session closed/);
  } finally {
    await f.close();
  }
});

test('the body stream of the caller failing: tempfail for that message, the filter stays usable', async () => {
  const f = await startFakeMilter(standardFilter());
  try {
    const m = await MilterSession.open(settingsFor(f.spec), client);
    await m.helo('x');
    await m.mail('a@example.com');
    await m.rcpt('b@example.org');
    await m.data();
    const { fields } = splitMessage('Subject: x\r\n\r\n');
    const r = await m.message({
      headers: fields,
      body: () =>
        (async function* () {
          yield Buffer.from('start\r\n');
          throw new Error('disk read failed');
        })(),
    });
    assert.equal(r.verdict.kind, 'tempfail');
    assert.match((r.verdict as { detail: string }).detail, /reading the message body: disk read failed/);
    await m.mail('c@example.com');
    await m.rcpt('b@example.org');
    await m.data();
    assert.deepEqual((await m.message(message('ok\r\n'))).verdict, { kind: 'continue' });
    m.close();
  } finally {
    await f.close();
  }
});

test('no socket is left behind: the filter side sees every connection closed', async () => {
  const f = await startFakeMilter(standardFilter());
  const sessions: MilterSession[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const m = await MilterSession.open(settingsFor(f.spec), client);
      sessions.push(m);
      await m.helo('x');
      if (i % 2) {
        await m.mail('a@example.com');
        await m.abort();
      }
      m.close();
    }
    await Promise.all(f.connections.map((c) => c.closed));
    assert.equal(f.connections.length, 20);
    assert.ok(f.connections.every((c) => c.socket.destroyed));
    // Each got QUIT before the close.
    assert.ok(f.connections.every((c) => c.received.at(-1)?.type === 'quit'));
  } finally {
    for (const m of sessions) m.close();
    await f.close();
  }
});
