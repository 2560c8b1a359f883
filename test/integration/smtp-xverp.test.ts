// XVERP (Postfix's MAIL parameter; issue 17, item 2) end to end, on a started instance and the
// simulated internet: a list server submitting `MAIL FROM:<news@bounces.list.test> XVERP` asks for
// VERP for that message alone, on a channel without the `verp` keyword. The EHLO reply offers
// XVERP to INTERNAL_IP clients only (Postfix's smtpd_authorized_verp_clients = $mynetworks); a bad
// value is 501 5.5.4, XVERP with the null sender 503 5.5.4 (Postfix's replies). Delivered: one
// transaction per recipient, each with its own envelope sender made with the message's
// delimiters, through a split by addrsperfile too; without XVERP the same recipients ride one
// transaction with the plain sender; a member refused at RCPT has its notice sent to its VERP address.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { startDnsServer, startSmtpPeers, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { mailLog, startMta } from './job-controller-harness.js';
import { SmtpProbe, type Reply } from './smtp-harness.js';

const LIST_ADDRESS = '127.0.74.1';
const INTERNAL_CLIENT = '127.0.74.2';
const EXTERNAL_CLIENT = '127.0.74.20';
const PEER = '127.0.74.10';
const OWNER = 'news@bounces.list.test';

let list: MtaInstance;
let dns: SimDns;
let peer: SmtpPeer;

before(async () => {
  const started = await startSmtpPeers([{ host: PEER, rcptReplies: { 'gone@d1.test': { code: 550, message: '5.1.1 <gone@d1.test>: Recipient address rejected: User unknown' } } }]);
  peer = started.peers[0]!;
  const records: Record<string, { a?: string[]; mx?: Array<{ exchange: string; preference: number }> }> = { 'mx.a.test': { a: [PEER] } };
  for (const d of ['d1', 'd2', 'd3', 'e1', 'e2', 'e3']) records[`${d}.test`] = { mx: [{ exchange: 'mx.a.test', preference: 10 }] };
  dns = await startDnsServer({ host: '127.0.74.53', port: 0, records });
  list = await MtaInstance.create({ address: LIST_ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=1' });
  list.inst.write(
    'etc/imta.cnf',
    `! a list's MTA: no channel has verp; the e*.test domains go out one recipient per queue file
localhost            $U%localhost@localhost
bounces.list.test    $U%bounces.list.test@bounces-daemon
e1.test              $U%$D@tcp_split-daemon
e2.test              $U%$D@tcp_split-daemon
e3.test              $U%$D@tcp_split-daemon
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx port ${started.port}
tcp-daemon

tcp_split smtp mx addrsperfile 1 port ${started.port}
tcp_split-daemon

bounces
bounces-daemon
`,
  );
  list.inst.write('etc/option.dat', `INTERNAL_IP=127.0.74.0/29\nLOCAL_HOST=lists.list.test\nDNS_SERVERS=${dns.server}\nDNS_TIMEOUT=2\n`);
  await startMta(list);
});

after(async () => {
  await list?.cleanup();
  await Promise.allSettled([peer?.close(), dns?.close()]);
});

async function session(client = INTERNAL_CLIENT): Promise<{ probe: SmtpProbe; ehlo: Reply }> {
  const probe = await SmtpProbe.connect(LIST_ADDRESS, list.port, client);
  const ehlo = await probe.hello('lists.client.test');
  return { probe, ehlo };
}

/** One message over a session of the internal client: MAIL with `params`, each RCPT, DATA; the final reply. */
async function submit(from: string, params: string, to: string[], subject: string): Promise<string> {
  const { probe } = await session();
  try {
    const expect = async (line: string, code: number) => {
      const r = await probe.command(line);
      assert.equal(r?.code, code, `${line} → ${r?.text}`);
      return r?.text ?? '';
    };
    await expect(`MAIL FROM:<${from}>${params ? ' ' + params : ''}`, 250);
    for (const t of to) await expect(`RCPT TO:<${t}>`, 250);
    await expect('DATA', 354);
    return await expect(`From: <${from}>\r\nTo: <news@list.test>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '_')}@list.test>\r\n\r\nThe news.\r\n.`, 250);
  } finally {
    probe.close();
  }
}

const transactionsOf = (subject: string) => peer.transactions.filter((t) => t.data.toString('latin1').includes(`Subject: ${subject}\r\n`));

test('EHLO offers XVERP to INTERNAL_IP clients only; outside it, XVERP is an unsupported parameter (555 5.5.4)', async () => {
  const inside = await session();
  assert.ok(inside.ehlo.lines.some((l) => /^250[ -]XVERP$/.test(l)), inside.ehlo.text);
  inside.probe.close();
  const outside = await session(EXTERNAL_CLIENT);
  try {
    assert.ok(!outside.ehlo.lines.some((l) => /XVERP/.test(l)), outside.ehlo.text);
    const mail = await outside.probe.command(`MAIL FROM:<${OWNER}> XVERP`);
    assert.match(mail?.text ?? '', /^555 5\.5\.4 Unsupported parameter XVERP/);
  } finally {
    outside.probe.close();
  }
});

test('XVERP values: XVERP=+= taken, XVERP=ab and XVERP=+- are 501 5.5.4, XVERP with the null sender 503 5.5.4', async () => {
  const { probe } = await session();
  try {
    const bad = await probe.command(`MAIL FROM:<${OWNER}> XVERP=ab`);
    assert.match(bad?.text ?? '', /^501 5\.5\.4 Error: XVERP needs two characters from - = \+/);
    assert.match((await probe.command(`MAIL FROM:<${OWNER}> XVERP=+-`))?.text ?? '', /^501 5\.5\.4 /);
    assert.match((await probe.command('MAIL FROM:<> XVERP'))?.text ?? '', /^503 5\.5\.4 Error: XVERP requires non-null sender/);
    assert.match((await probe.command(`MAIL FROM:<${OWNER}> XVERP=+=`))?.text ?? '', /^250 /);
    assert.equal((await probe.command('RSET'))?.code, 250);
    assert.match((await probe.command('MAIL FROM:<>'))?.text ?? '', /^250 /, 'the null sender without XVERP is fine');
  } finally {
    probe.close();
  }
});

test('XVERP on a channel without verp: three recipients, three transactions, each its own envelope sender; without it one transaction', async () => {
  const members = ['ann@d1.test', 'bob@d2.test', 'cy@d3.test'];
  await submit(OWNER, 'XVERP', members, 'xverp default');
  await submit(OWNER, '', members, 'plain');
  await submit(OWNER, 'XVERP=-=', members, 'xverp dash');
  await waitFor(() => transactionsOf('xverp default').length === 3 && transactionsOf('plain').length === 1 && transactionsOf('xverp dash').length === 3, {
    timeoutMs: 30_000,
    what: 'the three messages at the peer',
  });
  const senders = (subject: string) => transactionsOf(subject).map((t) => `${t.to.join(',')} ${t.from}`).sort();
  assert.deepEqual(senders('xverp default'), ['ann@d1.test news+ann=d1.test@bounces.list.test', 'bob@d2.test news+bob=d2.test@bounces.list.test', 'cy@d3.test news+cy=d3.test@bounces.list.test']);
  assert.deepEqual(senders('xverp dash'), ['ann@d1.test news-ann=d1.test@bounces.list.test', 'bob@d2.test news-bob=d2.test@bounces.list.test', 'cy@d3.test news-cy=d3.test@bounces.list.test']);
  const plain = transactionsOf('plain');
  assert.equal(plain[0]!.from, OWNER);
  assert.deepEqual([...plain[0]!.to].sort(), members);
  // XVERP is ours to act on: never passed on to the next hop.
  for (const t of peer.transactions) assert.ok(!Object.keys(t.mailArgs).some((k) => /xverp/i.test(k)), JSON.stringify(t.mailArgs));
});

test('XVERP survives a split by addrsperfile: each queue file of the message keeps the request', async () => {
  await submit(OWNER, 'XVERP', ['ann@e1.test', 'bob@e2.test', 'cy@e3.test'], 'xverp split');
  await waitFor(() => transactionsOf('xverp split').length === 3, { timeoutMs: 30_000, what: 'the split message at the peer' });
  assert.deepEqual(transactionsOf('xverp split').map((t) => t.from).sort(), ['news+ann=e1.test@bounces.list.test', 'news+bob=e2.test@bounces.list.test', 'news+cy=e3.test@bounces.list.test']);
});

test('a member refused at RCPT: its notice goes to its own VERP address, so the bounces channel records the member', async () => {
  await submit(OWNER, 'XVERP', ['gone@d1.test', 'dee@d2.test'], 'xverp bounce');
  await waitFor(() => mailLog(list).some((r) => r.event === 'D' && r.destination === 'bounces'), { timeoutMs: 30_000, what: 'the notice taken by the bounces channel' });
  const notices = mailLog(list).filter((r) => r.event === 'E' && (r.from === '<>' || r.from === '') && r.destination === 'bounces');
  assert.deepEqual(notices.map((r) => r.recipient), ['news+gone=d1.test@bounces.list.test']);
  const json = await list.imsimta(['bounces', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const records = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { list: string; member: string; verp: boolean });
  assert.deepEqual(records.map((r) => [r.list, r.member, r.verp]), [[OWNER, 'gone@d1.test', true]]);
});
