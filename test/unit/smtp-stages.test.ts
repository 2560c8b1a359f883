// The SMTP stages' ordered checks (src/smtp-server/stages.ts, mail-checks.ts): the runner asks
// the checks in order and stops at the first answer that is not next, stays synchronous while
// the checks are, waits for a check that answers with a promise, and hands on a check's failure;
// MAIL_CHECKS refuse in the order the service always had (TLS first, then the message count,
// the parameters, the sender's character set).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SMTPServerSession } from 'smtp-server';
import { ACCEPT, NEXT, refuse, runChecks, type Check, type StageServices, type Verdict } from '../../src/smtp-server/stages.js';
import { MAIL_CHECKS, type MailCommand } from '../../src/smtp-server/mail-checks.js';
import { REPLIES } from '../../src/smtp-server/replies.js';
import type { InboundSettings } from '../../src/smtp-server/settings.js';
import type { InboundPolicy } from '../../src/smtp-server/inbound-policy.js';
import { newSessionPolicy } from '../../src/smtp-server/session-policy.js';

/** No mapping tables, no SPF, no milter: the policy checks of MAIL_CHECKS say next. */
const NO_POLICY = {
  mappings: { file: null, tables: new Map() },
  rbl: null,
  authFor: () => ({ spf: { stage: 'none' } }),
  miltersFor: () => null,
} as unknown as InboundPolicy;

const REFUSAL = { code: 550, enhanced: '5.7.1', text: 'no' };

function run<C>(checks: ReadonlyArray<Check<C>>, command: C): { result: Promise<Verdict> } {
  return { result: new Promise<Verdict>((resolve, reject) => runChecks(checks, command, resolve, reject)) };
}

test('checks run in order and the first answer that is not next stands', async () => {
  const asked: string[] = [];
  const check = (name: string, v: Verdict): Check<null> => () => (asked.push(name), v);
  assert.deepEqual(await run([check('a', NEXT), check('b', refuse(REFUSAL, 'l')), check('c', ACCEPT)], null).result, { kind: 'refuse', reply: REFUSAL, destination: 'l' });
  assert.deepEqual(asked, ['a', 'b']);
  asked.length = 0;
  assert.deepEqual(await run([check('a', ACCEPT), check('b', refuse(REFUSAL))], null).result, ACCEPT);
  assert.deepEqual(asked, ['a']);
});

test('every check says next, or there is none: the command is accepted', async () => {
  assert.deepEqual(await run([() => NEXT, () => NEXT], null).result, ACCEPT);
  assert.deepEqual(await run([], null).result, ACCEPT);
});

test('synchronous checks answer synchronously; a promise is waited for and the list goes on after it', async () => {
  let answered: Verdict | null = null;
  runChecks([() => NEXT, () => refuse(REFUSAL)], null, (v) => (answered = v), (err) => assert.fail(String(err)));
  assert.deepEqual(answered, { kind: 'refuse', reply: REFUSAL });
  const asked: string[] = [];
  const later: Check<null> = () => new Promise<Verdict>((resolve) => setImmediate(() => (asked.push('later'), resolve(NEXT))));
  const v = await run([later, () => (asked.push('after'), { kind: 'error', reply: REPLIES.localError })], null).result;
  assert.deepEqual(v, { kind: 'error', reply: REPLIES.localError });
  assert.deepEqual(asked, ['later', 'after']);
});

test('a check that throws or rejects is handed to fail, and no later check runs', async () => {
  let later = false;
  await assert.rejects(run([() => { throw new Error('boom'); }, () => ((later = true), NEXT)], null).result, /boom/);
  await assert.rejects(run([() => Promise.reject(new Error('lookup down')), () => ((later = true), NEXT)], null).result, /lookup down/);
  assert.equal(later, false);
});

function mail(opts: { mode?: 'none' | 'may' | 'must'; secure?: boolean; transaction?: number; max?: number; address?: string; args?: Record<string, string | true>; smtpUtf8?: boolean }): MailCommand {
  const settings = { tls: { mode: opts.mode ?? 'none', keyFile: null, certFile: null }, sasl: { server: 'none' }, maxMessagesPerSession: opts.max ?? 0 } as unknown as InboundSettings;
  return {
    address: { address: opts.address ?? 'a@x.test', args: opts.args ?? {} },
    smtp: { secure: opts.secure ?? false, transaction: opts.transaction ?? 1, envelope: { smtpUtf8: opts.smtpUtf8 ?? false } } as unknown as SMTPServerSession,
    session: { internal: false, sourceChannel: 'tcp_local', connectChannel: 'tcp_local', user: null, authMechanism: null, authFailures: 0, accepted: new Map(), policy: newSessionPolicy() },
    services: { settings, policy: NO_POLICY } as StageServices,
  };
}

const verdictOf = (command: MailCommand) => run(MAIL_CHECKS, command).result;

test('MAIL: TLS required first, then the messages per session, the parameters, the sender\'s character set', async () => {
  assert.deepEqual(await verdictOf(mail({})), ACCEPT);
  assert.deepEqual(await verdictOf(mail({ mode: 'must', transaction: 9, max: 2, args: { FOO: true } })), refuse(REPLIES.tlsRequired));
  assert.deepEqual(await verdictOf(mail({ mode: 'must', secure: true })), ACCEPT);
  assert.deepEqual(await verdictOf(mail({ transaction: 3, max: 2, args: { FOO: true } })), refuse(REPLIES.tooManyMessages));
  assert.deepEqual(await verdictOf(mail({ transaction: 2, max: 2 })), ACCEPT);
  const param = await verdictOf(mail({ args: { FOO: true }, address: 'ü@x.test' }));
  assert.equal(param.kind === 'refuse' && param.reply.code, 555);
  const charset = await verdictOf(mail({ address: 'ü@x.test' }));
  assert.equal(charset.kind === 'refuse' && charset.reply.enhanced, '5.6.7');
  assert.deepEqual(await verdictOf(mail({ address: 'ü@x.test', smtpUtf8: true })), ACCEPT);
  assert.deepEqual(await verdictOf(mail({ address: '' })), ACCEPT);
});
