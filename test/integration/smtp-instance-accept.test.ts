// Mail accepted by a started instance (start-msg, dispatcher, SMTP server processes) is in the
// queue with the right channel and envelope: swaks for single messages, smtp-source for load
// (a new connection per message, and many messages per connection). Delivery is stopped so the
// queue can be read back (test/helpers/held-instance.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMailLogLine } from '../../src/common/mail-log.js';
import { runTool } from './smtp-harness.js';
import { createHeldInstance, queuedMessages, queuedIdsOf, type QueuedRow } from '../helpers/held-instance.js';
import type { MtaInstance } from '../helpers/running-instance.js';

const ADDRESS = '127.0.4.10';
const NOWHERE = '127.0.4.11';
let mta: MtaInstance;

before(async () => {
  // Shipped process limits (MAX_LIFE_CONNS 100): the load below also retires processes.
  mta = await createHeldInstance({ address: ADDRESS, nowhere: NOWHERE, service: 'MIN_PROCS=1' });
  const r = await mta.cli('start-msg', []);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => mta?.cleanup());

const swaks = (args: string[]) => runTool('/usr/bin/swaks', ['--server', `${ADDRESS}:${mta.port}`, '--timeout', '10', '--hide-informational', ...args]);
const smtpSource = (args: string[]) => runTool('/usr/sbin/smtp-source', [...args, `${ADDRESS}:${mta.port}`], 60_000);

/** E records of mail.log: message id → recipients. */
function enqueuedInMailLog(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of readFileSync(join(mta.root, 'log', 'mail.log'), 'utf8').split('\n')) {
    const r = parseMailLogLine(line);
    if (r?.event === 'E') out.set(r.id, [...(out.get(r.id) ?? []), r.recipient]);
  }
  return out;
}

test('swaks: one file per destination channel, each with its recipients and the sender', async () => {
  const r = await swaks(['--from', 'alice@client.test', '--to', 'joe@localhost,x@held.test,y@remote.test,z@other.test', '--ehlo', 'client.test']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const ids = queuedIdsOf(r.stdout);
  assert.equal(ids.length, 3, r.stdout);
  const rows = (await queuedMessages(mta)).filter((row) => ids.includes(row.id));
  const byChannel = Object.fromEntries(rows.map((row) => [row.channel, row]));
  assert.deepEqual(Object.keys(byChannel).sort(), ['hold', 'l', 'tcp_local']);
  assert.deepEqual(byChannel.l!.recipients, ['joe@localhost']);
  assert.deepEqual(byChannel.hold!.recipients, ['x@held.test']);
  assert.deepEqual(byChannel.tcp_local!.recipients, ['y@remote.test', 'z@other.test']);
  for (const row of rows) {
    assert.equal(row.from, 'alice@client.test');
    assert.equal(row.attempts, 0, 'not delivered: its channel is stopped');
  }
});

test('swaks with the null sender: queued with an empty from', async () => {
  const r = await swaks(['--from', '<>', '--to', 'bounce-target@remote.test', '--ehlo', 'client.test']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const [id] = queuedIdsOf(r.stdout);
  assert.ok(id, r.stdout);
  const row = (await queuedMessages(mta)).find((m) => m.id === id);
  assert.deepEqual({ channel: row?.channel, from: row?.from, recipients: row?.recipients }, { channel: 'tcp_local', from: '', recipients: ['bounce-target@remote.test'] });
});

/** Checks the messages of one smtp-source run: all there, on tcp_local, and the same ids as mail.log. */
function checkRun(rows: QueuedRow[], sender: string, recipient: string, count: number): void {
  const mine = rows.filter((m) => m.from === sender);
  assert.equal(mine.length, count, `${count} messages from ${sender} queued`);
  for (const m of mine) {
    assert.equal(m.channel, 'tcp_local');
    assert.deepEqual(m.recipients, [recipient]);
  }
  const logged = enqueuedInMailLog();
  const ids = new Set(mine.map((m) => m.id));
  assert.equal(ids.size, count, 'ids are unique');
  for (const id of ids) assert.deepEqual(logged.get(id), [recipient], `mail.log E record of ${id}`);
}

test('smtp-source -s 5 -m 200, a connection per message: all 200 queued', async () => {
  const r = await smtpSource(['-s', '5', '-m', '200', '-f', 'load@client.test', '-t', 'many@remote.test']);
  assert.equal(r.code, 0, r.stderr);
  checkRun(await queuedMessages(mta), 'load@client.test', 'many@remote.test', 200);
  // 200 connections went through processes that retire after 100 each: nothing was lost across it.
  assert.match(readFileSync(join(mta.root, 'log', 'dispatcher.log'), 'utf8'), /"reason":"life_conns"/);
});

test('smtp-source -d -s 5 -m 200 -l 2048, many messages per connection: all 200 queued', async () => {
  const r = await smtpSource(['-d', '-s', '5', '-m', '200', '-l', '2048', '-f', 'reuse@client.test', '-t', 'few@remote.test']);
  assert.equal(r.code, 0, r.stderr);
  const rows = await queuedMessages(mta);
  checkRun(rows, 'reuse@client.test', 'few@remote.test', 200);
  for (const m of rows.filter((x) => x.from === 'reuse@client.test')) assert.ok((m.size ?? 0) > 2048, `size ${m.size}`);
});

test('the queue holds exactly what was answered 250: nothing more', async () => {
  const rows = await queuedMessages(mta);
  assert.equal(rows.length, 3 + 1 + 200 + 200);
  assert.equal(new Set(rows.map((r) => r.id)).size, rows.length);
  const summary = JSON.parse((await mta.imsimta(['qm', 'summarize', '--json'])).stdout) as { messages: number };
  assert.equal(summary.messages, rows.length);
});
