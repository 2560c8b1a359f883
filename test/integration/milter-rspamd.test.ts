// The milter client against a real rspamd (proxy worker, `milter = yes`), started by the test
// with its own configuration: GTUBE is refused with rspamd's reply text, a clean message is
// accepted with rspamd's headers as modifications, several messages share one connection, the
// unix socket works, and rspamd stopped in the middle of a transaction gives the default action.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { splitMessage } from '../../src/common/rfc5322-header.js';
import { MilterSession } from '../../src/milter/session.js';
import { milterSettings, parseFilterList, type DefaultAction, type FilterSpec } from '../../src/milter/settings.js';
import { applyModifications } from '../../src/milter/modifications.js';
import { startRspamd, type Rspamd } from '../helpers/rspamd.js';
import { GTUBE, RECEIVED, runScenario, SCENARIOS } from '../fixtures/milter/scenarios.js';

let rspamd: Rspamd;
let spec: FilterSpec;

before(async () => {
  rspamd = await startRspamd();
  const parsed = parseFilterList(`inet:127.0.0.1:${rspamd.port}`);
  assert.ok(parsed.ok);
  spec = parsed.value[0]!;
});

after(async () => {
  await rspamd?.remove();
});

const settings = (more: { defaultAction?: DefaultAction; filters?: FilterSpec[] } = {}) =>
  milterSettings(more.filters ?? [spec], { defaultAction: more.defaultAction, timeouts: { connectMs: 5000, commandMs: 20_000, contentMs: 20_000 } });

const failWith = (r: unknown) => `${JSON.stringify(r)}\n--- rspamd log ---\n${rspamd.logTail()}`;

test('GTUBE is refused with rspamd’s reply, at the end of the message', async () => {
  const run = await runScenario(settings(), SCENARIOS.gtube);
  for (const v of Object.values(run.stages)) assert.deepEqual(v, { kind: 'continue' }, failWith(run));
  assert.deepEqual(
    run.result,
    { verdict: { kind: 'reject', reply: { code: 554, enhanced: '5.7.1', lines: ['Gtube pattern'] }, filter: spec.name, byDefault: false, detail: null }, modifications: [] },
    failWith(run),
  );
});

test('a clean message is accepted and carries rspamd’s headers', async () => {
  const run = await runScenario(settings(), SCENARIOS.clean);
  assert.deepEqual(run.result.verdict, { kind: 'continue' }, failWith(run));
  const mods = run.result.modifications;
  const added = new Map(mods.flatMap((m) => (m.type === 'add-header' || m.type === 'insert-header' ? [[m.name, m.value] as const] : [])));
  assert.match(added.get('X-Spam-Status') ?? '', /^ No, score=-?\d+\.\d+/, failWith(mods));
  assert.match(added.get('X-Spamd-Result') ?? '', /^ default: False \[/, failWith(mods));
  // rspamd inserts Authentication-Results at index 1: just below the MTA's own Received: line.
  const { fields } = splitMessage(RECEIVED + SCENARIOS.clean.message);
  const edited = applyModifications({ headers: fields, hiddenHeaders: 1, recipients: ['user@example.org'], addressOf: (r) => r }, mods);
  assert.deepEqual(edited.headers.slice(0, 3).map((h) => h.name), ['received', 'authentication-results', 'from']);
  assert.deepEqual(edited.headers.slice(-2).map((h) => h.name).sort(), ['x-spam-status', 'x-spamd-result']);
  assert.ok(edited.headers.every((h) => /\r\n$/.test(h.raw) && !/\r\n(?![ \t])[^]/.test(h.raw.slice(0, -2))));
  assert.deepEqual(edited.kept, ['user@example.org']);
  assert.equal(edited.body, null);
});

test('several messages on one connection, over the unix socket: clean, GTUBE, clean', async () => {
  const unix = parseFilterList(`unix:${rspamd.socketPath}`);
  assert.ok(unix.ok);
  const s = SCENARIOS.clean;
  const m = await MilterSession.open(settings({ filters: unix.value }), s.client);
  try {
    assert.deepEqual(m.connectVerdict, { kind: 'continue' });
    assert.deepEqual(await m.helo(s.helo), { kind: 'continue' });
    const verdicts: string[] = [];
    for (const [i, text] of [s.message, SCENARIOS.gtube.message, s.message].entries()) {
      await m.mail(s.sender, [], { queueId: `Q${i}` });
      await m.rcpt('user@example.org', [], { channel: 'l' });
      await m.data();
      const { fields, body } = splitMessage(RECEIVED + text);
      const r = await m.message({ headers: fields, hidden: 1, body: Buffer.from(body, 'latin1') });
      verdicts.push(r.verdict.kind);
    }
    // An abandoned transaction in between (RSET) does not disturb the next one.
    await m.mail(s.sender);
    await m.abort();
    await m.mail(s.sender);
    await m.rcpt('user@example.org');
    await m.data();
    const { fields } = splitMessage(RECEIVED + s.message);
    verdicts.push((await m.message({ headers: fields, hidden: 1, body: () => (async function* () { yield 'Hello\r\n'; yield GTUBE + '\r\n'; })() })).verdict.kind);
    assert.deepEqual(verdicts, ['continue', 'reject', 'continue', 'reject'], rspamd.logTail());
  } finally {
    m.close();
  }
});

// Last: stops rspamd.
test('rspamd stopped in the middle of a transaction: tempfail (or the configured action), no exception', async () => {
  const s = SCENARIOS.clean;
  const m = await MilterSession.open(settings(), s.client);
  const lenient = await MilterSession.open(settings({ defaultAction: 'accept' }), s.client);
  try {
    for (const session of [m, lenient]) {
      assert.deepEqual(await session.helo(s.helo), { kind: 'continue' });
      assert.deepEqual(await session.mail(s.sender, [], { queueId: 'Q9' }), { kind: 'continue' });
      assert.deepEqual(await session.rcpt('user@example.org'), { kind: 'continue' });
    }
    await rspamd.stop('SIGKILL');
    const { fields, body } = splitMessage(RECEIVED + s.message);
    const content = { headers: fields, hidden: 1, body: Buffer.from(body, 'latin1') };
    // The data stage may still pass (rspamd does not answer it); the end of the message cannot.
    const data = await m.data();
    const r = data.kind === 'continue' ? (await m.message(content)).verdict : data;
    assert.equal(r.kind, 'tempfail', JSON.stringify(r));
    assert.deepEqual(r.kind === 'tempfail' && r.reply, { code: 451, enhanced: '4.7.1', lines: ['Service unavailable - try again later'] });
    assert.equal(r.kind === 'tempfail' && r.byDefault, true);
    await lenient.data();
    assert.deepEqual((await lenient.message(content)).verdict, { kind: 'continue' });
    // A new connection finds nobody there.
    const next = await MilterSession.open(settings(), s.client);
    assert.equal(next.connectVerdict.kind, 'tempfail');
    assert.match((next.connectVerdict as { detail: string }).detail, /ECONNREFUSED/);
    next.close();
  } finally {
    m.close();
    lenient.close();
  }
});
