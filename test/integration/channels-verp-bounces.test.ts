// VERP bounces end to end, on two started instances and a simulated receiver:
//   the list's MTA (LIST): bounces.list.test is routed to its bounces channel;
//   a remote MTA (REMOTE): relays to a peer that refuses 5 of 100 list members, returns DSNs to
//     the senders, and sends the DSNs for bounces.list.test back to LIST over SMTP.
// Each of the 100 messages goes out with the member's own envelope sender
// (news+member=domain@bounces.list.test, as the verp channel keyword will send them), one RCPT per
// transaction. The bounce record names exactly the 5 refused members; `imsimta bounces` shows
// them (filters, summary, JSON). Bounces come to LIST from outside its INTERNAL_IP (where it
// relays nothing) and are accepted; an auto-reply is taken without a record, qmail's non-DSN
// bounce is recorded for its VERP member.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/sim-internet.js';
import { mailLog, sendMessages, startMta } from './job-controller-harness.js';
import { verpSender } from '../../src/delivery/verp.js';
import type { BounceRecord } from '../../src/notices/bounce-records.js';

const LIST_ADDRESS = '127.0.71.1';
const REMOTE_ADDRESS = '127.0.71.2';
const PEER_ADDRESS = '127.0.71.3';
const OWNER = 'news@bounces.list.test';

const members = Array.from({ length: 100 }, (_, i) => `member${String(i).padStart(2, '0')}@d${i % 10}.test`);
const refused = ['member03@d3.test', 'member17@d7.test', 'member42@d2.test', 'member58@d8.test', 'member99@d9.test'];

let list: MtaInstance;
let remote: MtaInstance;
let peer: SmtpPeer;

before(async () => {
  peer = await startSmtpPeer({ host: PEER_ADDRESS, rcptReplies: Object.fromEntries(refused.map((m) => [m, { code: 550, message: `5.1.1 <${m}>: Recipient address rejected: User unknown` }])) });
  list = await MtaInstance.create({ address: LIST_ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=2' });
  list.inst.write(
    'etc/imta.cnf',
    `! the list's MTA
localhost            $U%localhost@localhost
bounces.list.test    $U%bounces.list.test@bounces-daemon
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp nomx spfnone noauthverify
tcp-daemon

bounces
bounces-daemon
`,
  );
  // Nobody is internal: every client here is the internet (it may not relay, but bounces come in).
  list.inst.write('etc/option.dat', 'INTERNAL_IP=192.0.2.0/24\nLOCAL_HOST=lists.list.test\n');
  remote = await MtaInstance.create({ address: REMOTE_ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=2' });
  remote.inst.write(
    'etc/imta.cnf',
    `! a remote MTA that bounces
bounces.list.test    $U%bounces.list.test@tcp_back-daemon
.                    $U%$H@tcp-daemon

tcp_local smtp nomx spfnone noauthverify
tcp_local-daemon

tcp_remote smtp nomx daemon ${PEER_ADDRESS} port ${peer.port}
tcp-daemon

tcp_back smtp nomx daemon ${LIST_ADDRESS} port ${list.port}
tcp_back-daemon
`,
  );
  remote.inst.write('etc/option.dat', 'INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mta.remote.test\n');
  await startMta(list);
  await startMta(remote);
});

after(async () => {
  await Promise.allSettled([list?.cleanup(), remote?.cleanup()]);
  await peer?.close();
});

function records(): BounceRecord[] {
  const file = join(list.root, 'log', 'bounces.jsonl');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as BounceRecord) : [];
}

test('100 members, one envelope sender each; the 5 the receiver refuses are recorded, exactly those', async () => {
  const messages = members.map((m) => ({ from: verpSender(OWNER, m)!, to: [m], subject: `issue 7 for ${m}` }));
  assert.equal(messages[3]!.from, 'news+member03=d3.test@bounces.list.test');
  await sendMessages(REMOTE_ADDRESS, remote.port, messages);
  // The remote's work is done when 95 are delivered and 5 returned with DSNs that reached the list's MTA.
  await waitFor(
    () => {
      const log = mailLog(remote);
      return log.filter((r) => r.event === 'D' && r.destination === 'tcp_remote').length === 95 && log.filter((r) => r.event === 'D' && r.destination === 'tcp_back').length === 5;
    },
    { timeoutMs: 60_000, what: '95 deliveries and 5 DSNs sent back' },
  );
  await waitFor(() => mailLog(list).filter((r) => r.event === 'D' && r.destination === 'bounces').length >= 5, { timeoutMs: 15_000, what: 'the bounces taken by the channel' });
  assert.equal(mailLog(remote).filter((r) => r.event === 'R').length, 5);
  const got = records();
  assert.deepEqual(got.map((r) => r.member).sort(), [...refused].sort());
  for (const r of got) {
    assert.equal(r.list, OWNER);
    assert.equal(r.verp, true);
    assert.equal(r.kind, 'dsn');
    assert.equal(r.action, 'failed');
    assert.equal(r.status, '5.1.1');
    assert.match(r.diagnostic!, new RegExp(`550 5\\.1\\.1 <${r.member!.replace(/\./g, '\\.')}>: Recipient address rejected`));
    assert.equal(r.reporting_mta, 'dns; mta.remote.test');
    assert.match(r.remote_mta ?? '', /^dns; /);
  }
  assert.equal(new Set(peer.deliveredRecipients()).size, 95);
  // Each transaction had one recipient and its own sender.
  for (const t of peer.transactions) assert.equal(t.from, verpSender(OWNER, t.to[0]!));
  // The list's mail.log: each bounce delivered to the bounces channel with what was recorded.
  const taken = mailLog(list).filter((r) => r.event === 'D' && r.destination === 'bounces');
  assert.equal(taken.length, 5);
  for (const r of taken) assert.match(r.status, /^250 2\.0\.0 bounce recorded for member\d\d@d\d\.test$/);

  // imsimta bounces: the table, JSON, the list filter, --since, --summary.
  const text = await list.imsimta(['bounces']);
  assert.equal(text.code, 0, text.stderr);
  for (const m of refused) assert.match(text.stdout, new RegExp(`\\s${m.replace(/\./g, '\\.')}\\s+5\\.1\\.1\\s+smtp; 550 5\\.1\\.1`));
  assert.match(text.stdout, /^5 bounces of 5 members\.$/m);
  const json = await list.imsimta(['bounces', '--json', '--list', 'NEWS@bounces.list.test']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(json.stdout.trim().split('\n').map((l) => (JSON.parse(l) as BounceRecord).member).sort(), [...refused].sort());
  assert.equal((await list.imsimta(['bounces', '--json', '--list', 'other@bounces.list.test'])).stdout, '');
  assert.equal((await list.imsimta(['bounces', '--json', '--since', 'PT1H'])).stdout.trim().split('\n').length, 5);
  assert.equal((await list.imsimta(['bounces', '--json', '--since', '2999-01-01'])).stdout, '');
  const summary = await list.imsimta(['bounces', '--summary', '--json']);
  assert.deepEqual(summary.stdout.trim().split('\n').map((l) => JSON.parse(l) as { member: string; bounces: number }).map((s) => [s.member, s.bounces]).sort(), refused.map((m) => [m, 1]).sort());
  const bad = await list.imsimta(['bounces', '--since', 'last tuesday']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^imsimta: --since takes a date or time/);
});

test('bounces are accepted from the internet (which may not relay here); an auto-reply is taken without a record, a plain-text bounce is recorded', async () => {
  const before = records().length;
  const relay = await sendMessages(LIST_ADDRESS, list.port, [{ from: 'x@client.test', to: ['someone@elsewhere.test'], subject: 'relay?' }]).catch((e: Error) => e.message);
  assert.match(String(relay), /RCPT TO:<someone@elsewhere\.test>" got "55\d/, 'the client is outside INTERNAL_IP');
  const vacation = verpSender(OWNER, 'member10@d0.test')!;
  const qmail = verpSender(OWNER, 'member11@d1.test')!;
  await sendMessages(LIST_ADDRESS, list.port, [
    { from: 'member10@d0.test', to: [vacation], subject: 'x', raw: `From: member10@d0.test\nTo: ${vacation}\nSubject: Out of Office\nAuto-Submitted: auto-replied\n\nAway until Monday.\n` },
    {
      from: '',
      to: [qmail],
      subject: 'x',
      raw: `From: MAILER-DAEMON@old.test\nTo: ${qmail}\nSubject: failure notice\n\nHi. This is the qmail-send program at old.test.\n\n<member11@d1.test>:\nRemote host said: 550 5.1.1 <member11@d1.test>... User unknown\n`,
    },
  ]);
  await waitFor(() => mailLog(list).filter((r) => r.event === 'D' && r.destination === 'bounces').length >= 7, { timeoutMs: 30_000, what: 'both messages taken by the bounces channel' });
  const added = records().slice(before);
  assert.deepEqual(added.map((r) => [r.member, r.kind, r.action, r.status, r.diagnostic]), [['member11@d1.test', 'other', 'unknown', '5.1.1', '550 5.1.1 <member11@d1.test>... User unknown']]);
  const auto = mailLog(list).find((r) => r.event === 'D' && r.recipient === vacation);
  assert.match(auto?.status ?? '', /an auto-reply, not a bounce: not recorded/);
});
