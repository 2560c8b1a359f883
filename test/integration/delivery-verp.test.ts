// VERP sending end to end (issue 17, item 2), on a started instance and the simulated internet:
// one list message from news@bounces.list.test to 100 members at ten simulated domains, sent
// by a channel with `verp`. Two receivers refuse four members at RCPT and a fifth member's domain
// does not exist (NXDOMAIN). Every member's transaction carries its own VERP sender (one RCPT
// per transaction, the connections still shared), the instance returns each failure to that
// member's VERP address, which its rewrite rules route to the bounces channel: the bounce record
// names exactly the 5, each as a VERP bounce of the list.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { startDnsServer, startSmtpPeers, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { mailLog, sendMessages, startMta } from './job-controller-harness.js';
import { verpSender } from '../../src/delivery/verp.js';
import type { BounceRecord } from '../../src/notices/bounce-records.js';

const LIST_ADDRESS = '127.0.73.1';
const OWNER = 'news@bounces.list.test';
const PEER_A = '127.0.73.10';
const PEER_B = '127.0.73.11';

// member99 is at a domain that does not exist.
const members = Array.from({ length: 100 }, (_, i) => `member${String(i).padStart(2, '0')}@${i === 99 ? 'gone.test' : `d${i % 10}.test`}`);
const refusedAtRcpt = ['member03@d3.test', 'member17@d7.test', 'member42@d2.test', 'member58@d8.test'];
const bouncing = [...refusedAtRcpt, 'member99@gone.test'];

let list: MtaInstance;
let dns: SimDns;
let peers: SmtpPeer[];

before(async () => {
  const refuse = Object.fromEntries(refusedAtRcpt.map((m) => [m, { code: 550, message: `5.1.1 <${m}>: Recipient address rejected: User unknown` }]));
  const started = await startSmtpPeers([
    { host: PEER_A, rcptReplies: refuse },
    { host: PEER_B, rcptReplies: refuse },
  ]);
  peers = started.peers;
  // d0..d4 at mx.a.test, d5..d9 at mx.b.test: the domains of one receiver share its connections.
  const records: Record<string, { a?: string[]; mx?: Array<{ exchange: string; preference: number }> }> = { 'mx.a.test': { a: [PEER_A] }, 'mx.b.test': { a: [PEER_B] } };
  for (let d = 0; d < 10; d++) records[`d${d}.test`] = { mx: [{ exchange: d < 5 ? 'mx.a.test' : 'mx.b.test', preference: 10 }] };
  dns = await startDnsServer({ host: '127.0.73.53', port: 0, records });
  list = await MtaInstance.create({ address: LIST_ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=2' });
  list.inst.write(
    'etc/imta.cnf',
    `! a list's MTA: list mail goes out with VERP, bounces come back to the bounces channel
localhost            $U%localhost@localhost
bounces.list.test    $U%bounces.list.test@bounces-daemon
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx verp port ${started.port}
tcp-daemon

bounces
bounces-daemon
`,
  );
  list.inst.write('etc/option.dat', `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=lists.list.test\nDNS_SERVERS=${dns.server}\nDNS_TIMEOUT=2\n`);
  await startMta(list);
});

after(async () => {
  await list?.cleanup();
  await Promise.allSettled([...(peers ?? []).map((p) => p.close()), dns?.close()]);
});

test('a list message to 100 members with verp: each member its own envelope sender, the 5 bounces recorded for exactly those members', async () => {
  const raw = `From: The News <news@list.test>\nTo: news@list.test\nSubject: issue 8 of the news\nMessage-ID: <issue8@list.test>\n\nThe news.\n`;
  await sendMessages(LIST_ADDRESS, list.port, [{ from: OWNER, to: members, subject: 'issue 8 of the news', raw }]);
  await waitFor(() => mailLog(list).filter((r) => r.event === 'D' && r.destination === 'bounces').length >= 5, { timeoutMs: 60_000, what: 'the 5 bounces taken by the bounces channel' });

  // The receivers: 95 members delivered, one transaction each, MAIL FROM the member's own VERP address.
  const transactions = peers.flatMap((p) => p.transactions);
  assert.equal(transactions.length, 95);
  for (const t of transactions) {
    assert.equal(t.to.length, 1, 'one RCPT per transaction');
    assert.equal(t.from, verpSender(OWNER, t.to[0]!));
  }
  assert.equal(transactions.find((t) => t.to[0] === 'member05@d5.test')?.from, 'news+member05=d5.test@bounces.list.test');
  assert.deepEqual(peers.flatMap((p) => p.deliveredRecipients()).sort(), members.filter((m) => !bouncing.includes(m)).sort());
  // The refused ones were asked for too, each once; connections were shared, not one per member.
  const asked = peers.flatMap((p) => p.rcptCommands);
  for (const m of refusedAtRcpt) assert.equal(asked.filter((a) => a === m).length, 1, m);
  assert.ok(peers.every((p) => p.connections.length <= 20), `connections: ${peers.map((p) => p.connections.length).join(', ')}`);

  // mail.log: 95 D and 5 R on tcp_local, and 5 notices, each to its member's VERP address.
  const log = mailLog(list);
  assert.equal(log.filter((r) => r.event === 'D' && r.destination === 'tcp_local').length, 95);
  assert.deepEqual(log.filter((r) => r.event === 'R').map((r) => r.recipient).sort(), [...bouncing].sort());
  const notices = log.filter((r) => r.event === 'E' && (r.from === '<>' || r.from === '') && r.destination === 'bounces');
  assert.deepEqual(notices.map((r) => r.recipient).sort(), bouncing.map((m) => verpSender(OWNER, m)).sort());

  // The bounce record, read with imsimta bounces --json: exactly the 5 members, as VERP bounces of the list.
  const json = await list.imsimta(['bounces', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const records = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as BounceRecord);
  assert.deepEqual(records.map((r) => r.member).sort(), [...bouncing].sort());
  for (const r of records) {
    assert.deepEqual([r.list, r.verp, r.kind, r.action], [OWNER, true, 'dsn', 'failed'], JSON.stringify(r));
    assert.equal(r.reporting_mta, 'dns; lists.list.test');
  }
  const byMember = new Map(records.map((r) => [r.member, r]));
  assert.match(byMember.get('member42@d2.test')!.diagnostic ?? '', /550 5\.1\.1 <member42@d2\.test>: Recipient address rejected/);
  assert.equal(byMember.get('member99@gone.test')!.status, '5.1.2');
});
