// MilterSession against small milter servers on real sockets: the recorded rspamd exchanges
// replayed byte for byte, filters in sequence seeing each other's changes, the filter's protocol
// flags, skips and macro lists honoured, connection-level refusals kept, discard and quarantine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { splitMessage } from '../../src/common/rfc5322-header.js';
import { MilterSession, type ClientInfo } from '../../src/milter/session.js';
import { milterSettings, type FilterSpec } from '../../src/milter/settings.js';
import { applyModifications } from '../../src/milter/modifications.js';
import { encodePacket, SMFIP, type MtaCommand } from '../../src/milter/protocol.js';
import { startFakeMilter, standardFilter, type FakeConnection } from '../helpers/fake-milter.js';
import { repoRoot } from '../helpers/instance.js';
import { runScenario, SCENARIOS, type ScenarioName } from '../fixtures/milter/scenarios.js';
import type { Fixture } from '../fixtures/milter/record.js';

const client: ClientInfo = { hostname: 'mx.example.org', daemonName: 'tsubame', clientAddress: '192.0.2.9', clientPort: 2525, clientName: null };
const settingsFor = (...specs: FilterSpec[]) => milterSettings(specs, { timeouts: { connectMs: 2000, commandMs: 3000, contentMs: 3000 } });
const RECEIVED = 'Received: from [192.0.2.9]\r\n\tby mx.example.org (tsubame) with ESMTP id Q1;\r\n\tMon, 1 Dec 2025 10:00:00 +0000\r\n';
const message = (text: string) => {
  const { fields, body } = splitMessage(RECEIVED + text);
  return { headers: fields, hidden: 1, body: Buffer.from(body, 'latin1') };
};
const MSG = 'From: a@example.com\r\nTo: b@example.org\r\nSubject: hello\r\n\r\nline one\r\nline two\r\n';

/** Runs one transaction up to and including message(). */
async function transaction(m: MilterSession, text = MSG) {
  const helo = await m.helo('client.example');
  const mail = await m.mail('a@example.com', ['BODY=8BITMIME'], { queueId: 'Q1' });
  const rcpt = await m.rcpt('b@example.org', [], { channel: 'l' });
  const data = await m.data();
  const result = await m.message(message(text));
  return { helo, mail, rcpt, data, ...result };
}

const types = (c: FakeConnection) => c.received.filter((x) => x.type !== 'macro').map((x) => x.type);

for (const name of ['clean', 'gtube'] as ScenarioName[]) {
  test(`the recorded rspamd exchange (${name}) replays byte for byte, with the same verdict`, async () => {
    const fixture = JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'milter', `rspamd-${name}.json`), 'utf8')) as Fixture;
    const mismatches: string[] = [];
    const milter = await startFakeMilter(async (c) => {
      for (const [i, p] of fixture.packets.entries()) {
        if (p.from === 'filter') {
          c.sendRaw(Buffer.from(p.hex, 'hex'));
          continue;
        }
        const cmd = await c.next();
        const got = cmd ? encodePacket(c.packets.at(-1)!.command, c.packets.at(-1)!.data).toString('hex') : '(closed)';
        if (got !== p.hex) mismatches.push(`packet ${i} (${p.command}): sent ${got}, recorded ${p.hex}`);
      }
    });
    try {
      const run = await runScenario(settingsFor({ ...milter.spec, name: 'rspamd' }), SCENARIOS[name]);
      await milter.settled();
      assert.deepEqual(mismatches, []);
      for (const stage of Object.values(run.stages)) assert.deepEqual(stage, { kind: 'continue' });
      if (name === 'gtube') {
        assert.deepEqual(run.result, { verdict: { kind: 'reject', reply: { code: 554, enhanced: '5.7.1', lines: ['Gtube pattern'] }, filter: 'rspamd', byDefault: false, detail: null }, modifications: [] });
      } else {
        assert.equal(run.result.verdict.kind, 'continue');
        assert.deepEqual(run.result.modifications.map((m) => m.type), ['add-header', 'insert-header', 'add-header']);
      }
    } finally {
      await milter.close();
    }
  });
}

test('filters in sequence: the second sees the first one’s header and body changes; requests come in order', async () => {
  const a = await startFakeMilter(
    standardFilter({
      eom: () => [
        { type: 'addheader', name: 'X-A', value: 'from A' },
        { type: 'chgheader', index: 1, name: 'Subject', value: '[A] hello' },
        { type: 'replbody', chunk: Buffer.from('replaced ') },
        { type: 'replbody', chunk: Buffer.from('by A\r\n') },
        { type: 'continue' },
      ],
    }),
  );
  const b = await startFakeMilter(
    standardFilter({
      eom: () => [{ type: 'addrcpt', address: '<archive@example.org>', args: null }, { type: 'insheader', index: 1, name: 'X-B', value: 'below Received' }, { type: 'accept' }],
    }),
  );
  const m = await MilterSession.open(settingsFor(a.spec, b.spec), client);
  try {
    const r = await transaction(m);
    assert.equal(r.verdict.kind, 'continue');
    assert.deepEqual(
      r.modifications.map((x) => `${x.filter === a.spec.name ? 'A' : 'B'} ${x.type}`),
      ['A add-header', 'A change-header', 'A replace-body', 'B add-recipient', 'B insert-header'],
    );
    const bSaw = b.connections[0]!.received;
    const headersB = bSaw.filter((x): x is Extract<MtaCommand, { type: 'header' }> => x.type === 'header').map((h) => `${h.name}: ${h.value}`);
    assert.deepEqual(headersB, ['From: a@example.com', 'To: b@example.org', 'Subject: [A] hello', 'X-A: from A']);
    const bodyB = Buffer.concat(bSaw.flatMap((x) => (x.type === 'body' ? [x.chunk] : []))).toString();
    assert.equal(bodyB, 'replaced by A\r\n');
    // A saw the message as it came, without the MTA's own Received:.
    assert.deepEqual(a.connections[0]!.received.filter((x) => x.type === 'header').length, 3);
    const edited = applyModifications({ ...message(MSG), hiddenHeaders: 1, recipients: ['b@example.org'], addressOf: (x) => x }, r.modifications);
    assert.deepEqual(edited.headers.map((h) => h.name), ['received', 'x-b', 'from', 'to', 'subject', 'x-a']);
    assert.equal(edited.headers[4]!.raw, 'Subject: [A] hello\r\n');
    assert.deepEqual(edited.added, [{ address: 'archive@example.org', args: null }]);
    assert.equal(edited.body!.toString(), 'replaced by A\r\n');
  } finally {
    m.close();
    await a.close();
    await b.close();
  }
});

test('the first refusal stops the stage: the next filter does not hear of that recipient; the reply is multi-line', async () => {
  const a = await startFakeMilter(
    standardFilter({
      answer: (cmd) =>
        cmd.type === 'rcpt' && cmd.argv[0] === '<bad@example.org>'
          ? { type: 'replycode', reply: { code: 550, enhanced: '5.7.1', lines: ['No such user here', 'see https://example.org/why'] } }
          : null,
    }),
  );
  const b = await startFakeMilter(standardFilter());
  const m = await MilterSession.open(settingsFor(a.spec, b.spec), client);
  try {
    await m.helo('client.example');
    await m.mail('a@example.com');
    const bad = await m.rcpt('bad@example.org');
    assert.deepEqual(bad, {
      kind: 'reject',
      reply: { code: 550, enhanced: '5.7.1', lines: ['No such user here', 'see https://example.org/why'] },
      filter: a.spec.name,
      byDefault: false,
      detail: null,
    });
    assert.deepEqual(await m.rcpt('good@example.org'), { kind: 'continue' });
    await m.abort();
    m.close();
    await b.connections[0]!.closed;
    const rcpts = b.connections[0]!.received.flatMap((x) => (x.type === 'rcpt' ? [x.argv[0]] : []));
    assert.deepEqual(rcpts, ['<good@example.org>']);
    assert.deepEqual(types(b.connections[0]!).slice(-2), ['abort', 'quit']);
  } finally {
    m.close();
    await a.close();
    await b.close();
  }
});

test('a refusal at connect stays: every later stage gets it, and the filter’s socket is closed', async () => {
  const f = await startFakeMilter(standardFilter({ answer: (cmd) => (cmd.type === 'connect' ? { type: 'replycode', reply: { code: 554, enhanced: '5.7.1', lines: ['Go away'] } } : null) }));
  const m = await MilterSession.open(settingsFor(f.spec), client);
  try {
    const refusal = { kind: 'reject', reply: { code: 554, enhanced: '5.7.1', lines: ['Go away'] }, filter: f.spec.name, byDefault: false, detail: null };
    assert.deepEqual(m.connectVerdict, refusal);
    await f.connections[0]!.closed;
    assert.deepEqual(await m.helo('x'), refusal);
    assert.deepEqual(await m.mail('a@example.com'), refusal);
    assert.deepEqual((await m.message(message(MSG))).verdict, refusal);
    assert.equal(m.active, false);
  } finally {
    m.close();
    await f.close();
  }
});

test('SMFIR_SHUTDOWN and a 421 reply close the SMTP connection (verdict shutdown, kept)', async () => {
  const f = await startFakeMilter(standardFilter({ answer: (cmd) => (cmd.type === 'mail' ? { type: 'shutdown' } : null) }));
  const g = await startFakeMilter(
    standardFilter({ answer: (cmd) => (cmd.type === 'data' ? { type: 'replycode', reply: { code: 421, enhanced: '4.3.2', lines: ['Going down'] } } : null) }),
  );
  const m = await MilterSession.open(settingsFor(f.spec), client);
  const n = await MilterSession.open(settingsFor(g.spec), client);
  try {
    await m.helo('x');
    const v = await m.mail('a@example.com');
    assert.equal(v.kind, 'shutdown');
    assert.equal(v.kind === 'shutdown' && v.reply.code, 421);
    assert.equal((await m.rcpt('b@example.org')).kind, 'shutdown');
    const r = await transaction(n);
    assert.deepEqual(r.data, { kind: 'shutdown', reply: { code: 421, enhanced: '4.3.2', lines: ['Going down'] }, filter: g.spec.name, byDefault: false, detail: null });
    assert.equal(r.verdict.kind, 'shutdown');
    await g.connections[0]!.closed;
  } finally {
    m.close();
    n.close();
    await f.close();
    await g.close();
  }
});

test('the filter’s protocol flags: events it declined are not sent, events it does not answer are not waited for', async () => {
  const protocol = SMFIP.NOHELO | SMFIP.NOHDRS | SMFIP.NODATA | SMFIP.NR_CONN | SMFIP.NR_MAIL | SMFIP.NR_RCPT | SMFIP.NR_EOH | SMFIP.NR_BODY;
  const f = await startFakeMilter(standardFilter({ optneg: { protocol }, eom: () => [{ type: 'accept' }] }));
  const m = await MilterSession.open(settingsFor(f.spec), client);
  try {
    const r = await transaction(m);
    assert.equal(r.verdict.kind, 'continue');
    m.close();
    await f.connections[0]!.closed;
    assert.deepEqual(types(f.connections[0]!), ['optneg', 'connect', 'mail', 'rcpt', 'eoh', 'body', 'eob', 'abort', 'quit']);
  } finally {
    m.close();
    await f.close();
  }
});

test('SMFIR_SKIP on a body chunk: no more chunks, straight to the end of the message; chunks are at most 64 KiB', async () => {
  const big = 'x'.repeat(998) + '\r\n';
  const text = `Subject: big\r\n\r\n${big.repeat(200)}`; // 200,000 bytes: four chunks
  const f = await startFakeMilter(standardFilter({ answer: (cmd) => (cmd.type === 'body' ? { type: 'skip' } : null) }));
  const g = await startFakeMilter(standardFilter());
  const m = await MilterSession.open(settingsFor(f.spec, g.spec), client);
  try {
    assert.equal((await transaction(m, text)).verdict.kind, 'continue');
    const chunks = (c: FakeConnection) => c.received.flatMap((x) => (x.type === 'body' ? [x.chunk.length] : []));
    assert.deepEqual(chunks(f.connections[0]!), [65535]);
    assert.deepEqual(chunks(g.connections[0]!), [65535, 65535, 65535, 200_000 - 3 * 65535]);
    assert.ok(types(f.connections[0]!).includes('eob'));
  } finally {
    m.close();
    await f.close();
    await g.close();
  }
});

test('a refusal on a body chunk ends the message there: no more chunks, no end of message', async () => {
  const text = `Subject: big\r\n\r\n${('z'.repeat(998) + '\r\n').repeat(200)}`;
  const f = await startFakeMilter(
    standardFilter({ answer: (cmd) => (cmd.type === 'body' ? { type: 'replycode', reply: { code: 552, enhanced: '5.3.4', lines: ['Too much z'] } } : null) }),
  );
  const m = await MilterSession.open(settingsFor(f.spec), client);
  try {
    const r = await transaction(m, text);
    assert.deepEqual(r.verdict, { kind: 'reject', reply: { code: 552, enhanced: '5.3.4', lines: ['Too much z'] }, filter: f.spec.name, byDefault: false, detail: null });
    m.close();
    await f.connections[0]!.closed;
    assert.deepEqual(types(f.connections[0]!).slice(-4), ['eoh', 'body', 'abort', 'quit']);
  } finally {
    m.close();
    await f.close();
  }
});

test('macros: the default lists, or the lists the filter asked for in its negotiation', async () => {
  const f = await startFakeMilter(standardFilter({ optneg: { macroLists: { connect: ['{client_addr}', '{no_such}'], rcpt: ['{rcpt_mailer}'] } } }));
  const g = await startFakeMilter(standardFilter());
  const m = await MilterSession.open(settingsFor(f.spec, g.spec), client);
  try {
    await transaction(m);
    const macros = (c: FakeConnection, stage: string) => c.received.find((x) => x.type === 'macro' && x.for === stage);
    assert.deepEqual(macros(f.connections[0]!, 'C'), { type: 'macro', for: 'C', macros: [['{client_addr}', '192.0.2.9']] });
    assert.deepEqual(macros(f.connections[0]!, 'R'), { type: 'macro', for: 'R', macros: [['{rcpt_mailer}', 'l']] });
    const gMail = macros(g.connections[0]!, 'M');
    assert.deepEqual(gMail, { type: 'macro', for: 'M', macros: [['i', 'Q1'], ['{mail_addr}', 'a@example.com']] });
    const connect = g.connections[0]!.received.find((x) => x.type === 'connect');
    assert.deepEqual(connect, { type: 'connect', hostname: '[192.0.2.9]', family: '4', port: 2525, address: '192.0.2.9' });
    const mail = g.connections[0]!.received.find((x) => x.type === 'mail');
    assert.deepEqual(mail, { type: 'mail', argv: ['<a@example.com>', 'BODY=8BITMIME'] });
  } finally {
    m.close();
    await f.close();
    await g.close();
  }
});

test('discard at RCPT: the message is dropped without being sent to the filters', async () => {
  let n = 0;
  const f = await startFakeMilter(standardFilter({ answer: (cmd) => (cmd.type === 'rcpt' && n++ === 0 ? { type: 'discard' } : null) }));
  const m = await MilterSession.open(settingsFor(f.spec), client);
  try {
    const r = await transaction(m);
    assert.deepEqual(r.rcpt, { kind: 'discard', filter: f.spec.name, byDefault: false, detail: null });
    assert.equal(r.data.kind, 'discard');
    assert.equal(r.verdict.kind, 'discard');
    assert.deepEqual(r.modifications, []);
    assert.ok(!f.connections[0]!.received.some((x) => x.type === 'data' || x.type === 'header' || x.type === 'body'));
    // The next transaction is filtered as usual.
    assert.equal((await transaction(m)).verdict.kind, 'continue');
    assert.ok(f.connections[0]!.received.some((x) => x.type === 'header'));
  } finally {
    m.close();
    await f.close();
  }
});

test('quarantine at the end of the message: accepted for the hold channel, with the filter’s changes', async () => {
  const f = await startFakeMilter(
    standardFilter({ eom: () => [{ type: 'quarantine', reason: 'suspicious attachment' }, { type: 'addheader', name: 'X-Held', value: 'yes' }, { type: 'continue' }] }),
  );
  const m = await MilterSession.open(settingsFor(f.spec), client);
  try {
    const r = await transaction(m);
    assert.deepEqual(r.verdict, { kind: 'quarantine', reason: 'suspicious attachment', filter: f.spec.name, byDefault: false, detail: null });
    assert.deepEqual(r.modifications, [{ filter: f.spec.name, type: 'add-header', name: 'X-Held', value: ' yes' }]);
    // Quarantine belongs to that message only.
    assert.equal((await transaction(m)).verdict.kind, 'quarantine');
  } finally {
    m.close();
    await f.close();
  }
});

test('a recipient the MTA refused reaches only a filter that asked for such (SMFIP_RCPT_REJ)', async () => {
  const wants = await startFakeMilter(standardFilter({ optneg: { protocol: SMFIP.RCPT_REJ }, answer: (cmd) => (cmd.type === 'rcpt' ? { type: 'reject' } : null) }));
  const not = await startFakeMilter(standardFilter());
  const m = await MilterSession.open(settingsFor(wants.spec, not.spec), client);
  try {
    await m.helo('x');
    await m.mail('a@example.com');
    // Refused by the MTA already: the verdict is always continue.
    assert.deepEqual(await m.rcpt('nobody@example.org', [], { refused: true }), { kind: 'continue' });
    m.close();
    await wants.connections[0]!.closed;
    await not.connections[0]!.closed;
    const rcpt = wants.connections[0]!.received.filter((x) => x.type === 'rcpt' || (x.type === 'macro' && x.for === 'R'));
    assert.deepEqual(rcpt[0], { type: 'macro', for: 'R', macros: [['{rcpt_addr}', 'nobody@example.org'], ['{rcpt_mailer}', 'error']] });
    assert.ok(!not.connections[0]!.received.some((x) => x.type === 'rcpt'));
  } finally {
    m.close();
    await wants.close();
    await not.close();
  }
});

test('a filter on a unix socket (unix:/path)', async () => {
  const f = await startFakeMilter(standardFilter({ eom: () => [{ type: 'replycode', reply: { code: 451, enhanced: '4.7.1', lines: ['Try later'] } }] }), { unix: true });
  const m = await MilterSession.open(settingsFor(f.spec), { ...client, clientAddress: null, clientPort: null });
  try {
    assert.match(f.spec.name, /^unix:\//);
    const r = await transaction(m);
    assert.deepEqual(r.verdict, { kind: 'tempfail', reply: { code: 451, enhanced: '4.7.1', lines: ['Try later'] }, filter: f.spec.name, byDefault: false, detail: null });
    assert.deepEqual(f.connections[0]!.received.find((x) => x.type === 'connect'), { type: 'connect', hostname: 'localhost', family: 'U', port: null, address: null });
  } finally {
    m.close();
    await f.close();
  }
});

test('accept at MAIL: that filter hears nothing more of the message, then takes part in the next one', async () => {
  let n = 0;
  const f = await startFakeMilter(standardFilter({ answer: (cmd) => (cmd.type === 'mail' && n++ === 0 ? { type: 'accept' } : null) }));
  const m = await MilterSession.open(settingsFor(f.spec), client);
  try {
    const first = await transaction(m);
    assert.equal(first.verdict.kind, 'continue');
    assert.ok(!f.connections[0]!.received.some((x) => x.type === 'rcpt' || x.type === 'header'));
    await transaction(m);
    assert.ok(f.connections[0]!.received.some((x) => x.type === 'header'));
  } finally {
    m.close();
    await f.close();
  }
});
