// Users and lists from LDAP on a running instance (issue 19): a real slapd with users, alternate
// addresses, forwarding users and groups; a simulated internet (DNS with MX records, SMTP peers
// for remote.test and origin.test). Mail from outside (origin.test) is checked at RCPT against
// the directory (unknown addresses 550 5.1.1, RFC 4515 filter characters literal, a group that
// only contains itself refused), delivered into mailboxes, expanded (members at other domains
// queued to tcp_local with the list owner as envelope sender, an unknown member told to the
// owner, a group that contains itself reported), forwarded with SRS, and a bounce from remote.test
// to the SRS address is reversed to the original sender (postsrsd with the same secret agrees).
// The directory stopped: 451 4.4.3 at RCPT and deferrals in the local channel, nothing lost and
// nothing duplicated; started again: mail flows with nothing restarted. The directory hung: the
// RCPT waits LDAP_TIMEOUT at most and other sessions are not held up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { groupLdif, ROOT_DN, ROOT_PASSWORD, startSlapd, SUFFIX, userLdif, type Slapd } from '../helpers/slapd.js';
import { startDnsServer, startSmtpPeers, type SimDns, type SmtpPeer } from '../helpers/sim-internet.js';
import { startPostsrsd } from '../helpers/postsrsd.js';
import { SmtpProbe } from './smtp-harness.js';
import { mailboxFiles, mailLog, queueFiles } from './job-controller-harness.js';

const ADDRESS = '127.0.19.1';
const OUTSIDE = '127.0.19.30';
const REMOTE_MX = '127.0.19.21';
const ORIGIN_MX = '127.0.19.22';
const SENDER = 'sender@origin.test';
const SRS_DOMAIN = 'srs.example.test';
const SRS_SECRET = 'directory-test-srs-secret-0123456789';

let slapd: Slapd;
let dns: SimDns;
let peers: { port: number; peers: SmtpPeer[] };
let mta: MtaInstance;
const remote = () => peers.peers[0]!;
const origin = () => peers.peers[1]!;
const people = (uid: string) => `uid=${uid},ou=People,${SUFFIX}`;

before(async () => {
  slapd = await startSlapd();
  await slapd.add(
    [
      userLdif('alice', { mailAlternateAddress: 'ali@example.test', userPassword: 'alice-ldap-pw' }),
      userLdif('bob', { mailDeliveryOption: 'forward', mailForwardingAddress: 'bob@remote.test' }),
      userLdif('carol', { mailDeliveryOption: ['mailbox', 'forward'], mailForwardingAddress: 'carol@remote.test' }),
      userLdif('dave', { mailDeliveryOption: 'hold' }),
      userLdif('listowner', { mail: 'staff-owner@example.test' }),
      userLdif('erin'),
      userLdif('greg', { mailDeliveryOption: 'forward', mailForwardingAddress: 'gone@remote.test' }),
      groupLdif('staff', { uniqueMember: people('carol'), mgrpRFC822MailMember: ['alice@example.test', 'outside@remote.test', 'nobody@example.test'], mgrpErrorsTo: 'staff-owner@example.test' }),
      groupLdif('selfish', { mgrpRFC822MailMember: ['alice@example.test', 'selfish@example.test'] }),
      groupLdif('loopy', { mgrpRFC822MailMember: 'loopy@example.test' }),
    ].join('\n'),
  );
  peers = await startSmtpPeers([{ host: REMOTE_MX, rcptReplies: { 'gone@remote.test': { code: 550, message: '5.1.1 no such user here' } } }, { host: ORIGIN_MX }]);
  dns = await startDnsServer({
    host: '127.0.19.53',
    records: {
      'remote.test': { mx: [{ exchange: 'mx.remote.test', preference: 10 }] },
      'mx.remote.test': { a: [REMOTE_MX] },
      'origin.test': { mx: [{ exchange: 'mx.origin.test', preference: 10 }] },
      'mx.origin.test': { a: [ORIGIN_MX] },
    },
  });
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! directory test
localhost            $U%localhost@localhost
example.test         $U%$D@localhost
${SRS_DOMAIN}        $U%$D@localhost
.                    $U%$H@tcp-daemon

l backoff "PT1S" "PT1S" "PT2S"
localhost

tcp_local smtp mx port ${peers.port} sourcesrs destinationsrs addresssrs backoff "PT1S" spfnone noauthverify maysaslserver saslcleartext saslswitchchannel tcp_auth
tcp-daemon

tcp_auth smtp mx port ${peers.port} backoff "PT1S" maysaslserver noswitchchannel
tcp_auth-daemon
`,
  );
  mta.inst.write('etc/ldap.secret', `${ROOT_PASSWORD}\n`);
  chmodSync(join(mta.root, 'etc/ldap.secret'), 0o600);
  mta.inst.write('etc/srs.secrets', `${SRS_SECRET}\n`);
  chmodSync(join(mta.root, 'etc/srs.secrets'), 0o600);
  mta.inst.write(
    'etc/option.dat',
    [
      `INTERNAL_IP=${ADDRESS}/32`,
      'LOCAL_HOST=mx.example.test',
      `DNS_SERVERS=${dns.server}`,
      'BANNER_PURGE_DELAY=0',
      `SRS_DOMAIN=${SRS_DOMAIN}`,
      `LDAP_HOST=127.0.0.1:${slapd.port}`,
      `LDAP_USER_ROOT=${SUFFIX}`,
      `LDAP_USERNAME=${ROOT_DN}`,
      'LDAP_PASSWORD_FILE=ldap.secret',
      'LDAP_TIMEOUT=1',
      'LDAP_RECONNECT_MIN=0.1',
      'LDAP_RECONNECT_MAX=0.5',
      // Short, so that a stopped directory shows within the test.
      'ALIAS_ENTRY_CACHE_TIMEOUT=1',
      'ALIAS_ENTRY_CACHE_NEGATIVE_TIMEOUT=1',
      '',
    ].join('\n'),
  );
  mta.inst.write('etc/aliases', 'postmaster: erin@example.test\n');
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});

after(async () => {
  await mta?.cleanup();
  await peers?.peers.reduce((p, peer) => p.then(() => peer.close()), Promise.resolve());
  await dns?.close();
  await slapd?.remove();
});

/** One SMTP session from `from` (an outside address by default): the reply of each RCPT; the message sent when one was accepted. */
async function send(rcpts: string[], opts: { sender?: string; subject?: string; client?: string; body?: string } = {}): Promise<Record<string, string>> {
  const p = await SmtpProbe.connect(ADDRESS, mta.port, opts.client ?? OUTSIDE);
  const replies: Record<string, string> = {};
  try {
    await p.hello('client.origin.test');
    assert.equal((await p.command(`MAIL FROM:<${opts.sender ?? SENDER}>`))?.code, 250);
    for (const r of rcpts) replies[r] = (await p.command(`RCPT TO:<${r}>`))?.text ?? 'no reply';
    if (Object.values(replies).some((t) => t.startsWith('250'))) {
      assert.equal((await p.command('DATA'))?.code, 354);
      const subject = opts.subject ?? 'directory test';
      const data = `From: <${opts.sender ?? SENDER}>\r\nTo: <someone@example.test>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '-')}@origin.test>\r\n\r\n${opts.body ?? 'hello'}\r\n.`;
      const done = await p.command(data);
      assert.match(done?.text ?? '', /^250 /, `end of DATA: ${done?.text}`);
    }
    await p.command('QUIT');
  } finally {
    p.close();
  }
  return replies;
}

/** The RCPT replies only (no message is sent whatever they are). */
async function rcptReplies(rcpts: string[]): Promise<Record<string, string>> {
  const p = await SmtpProbe.connect(ADDRESS, mta.port, OUTSIDE);
  const replies: Record<string, string> = {};
  try {
    await p.hello('client.origin.test');
    assert.equal((await p.command(`MAIL FROM:<${SENDER}>`))?.code, 250);
    for (const r of rcpts) replies[r] = (await p.command(`RCPT TO:<${r}>`))?.text ?? 'no reply';
    await p.command('QUIT');
  } finally {
    p.close();
  }
  return replies;
}

const inbox = (user: string) => mailboxFiles(mta, user).map((f) => readFileSync(f, 'latin1'));
const withSubject = (user: string, subject: string) => inbox(user).filter((t) => t.includes(`Subject: ${subject}\n`));
const peerGot = (peer: SmtpPeer, subject: string) => peer.transactions.filter((t) => t.data.toString('latin1').includes(`Subject: ${subject}\r\n`));

test('RCPT asks the directory: users by each address, forwarding users and lists accepted; unknown, undeliverable and filter-character addresses refused', async () => {
  const replies = await send(
    [
      'alice@example.test',
      'ali@example.test', // mailAlternateAddress
      'Alice+news@example.test', // +tag
      'bob@example.test', // forwarding only
      'staff@example.test',
      'postmaster@example.test', // etc/aliases before LDAP
      'nobody@example.test',
      'dave@example.test', // mailDeliveryOption hold: nothing tsubame delivers to
      'loopy@example.test', // a group whose only member is itself
      // RFC 4515: each would match alice (or everyone) if it widened the filter.
      '*@example.test',
      'ali*@example.test',
      '"*)(uid=*"@example.test',
      '"alice)(mail=*"@example.test',
      '"*)(|(objectClass=*"@example.test',
    ],
    { subject: 'rcpt-checks' },
  );
  for (const ok of ['alice@example.test', 'ali@example.test', 'Alice+news@example.test', 'bob@example.test', 'staff@example.test', 'postmaster@example.test']) assert.match(replies[ok]!, /^250 /, `${ok}: ${replies[ok]}`);
  for (const bad of ['nobody@example.test', 'dave@example.test', 'loopy@example.test', '*@example.test', 'ali*@example.test', '"*)(uid=*"@example.test', '"alice)(mail=*"@example.test', '"*)(|(objectClass=*"@example.test']) {
    assert.match(replies[bad]!, /^550 5\.1\.1 /, `${bad}: ${replies[bad]}`);
  }
  const rejected = mailLog(mta).filter((r) => r.event === 'J').map((r) => r.recipient);
  assert.ok(rejected.includes('nobody@example.test') && rejected.includes('"*)(uid=*"@example.test'), 'the refusals are J records');
  // alice: direct, alternate, +tag and through staff; erin through postmaster.
  await waitFor(() => withSubject('alice', 'rcpt-checks').length === 4 && withSubject('erin', 'rcpt-checks').length === 1, { timeoutMs: 30_000, what: 'the accepted recipients delivered' });
});

/** One SMTP session that authenticates with AUTH PLAIN: the AUTH reply, and MAIL/RCPT replies when it was accepted. */
async function sendAuthenticated(user: string, password: string, from: string, to: string): Promise<{ auth: string; mail?: string; rcpt?: string }> {
  const p = await SmtpProbe.connect(ADDRESS, mta.port, OUTSIDE);
  try {
    await p.hello('laptop.origin.test');
    const auth = (await p.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`))?.text ?? 'no reply';
    if (!auth.startsWith('235')) return { auth };
    const mail = (await p.command(`MAIL FROM:<${from}>`))?.text ?? 'no reply';
    if (!mail.startsWith('250')) return { auth, mail };
    const rcpt = (await p.command(`RCPT TO:<${to}>`))?.text ?? 'no reply';
    if (rcpt.startsWith('250')) {
      assert.equal((await p.command('DATA'))?.code, 354);
      const done = await p.command(`From: <${from}>\r\nTo: <${to}>\r\nSubject: ldap auth\r\nMessage-ID: <ldap-auth-${user}@example.test>\r\n\r\nhello\r\n.`);
      assert.match(done?.text ?? '', /^250 /, `end of DATA: ${done?.text}`);
    }
    await p.command('QUIT');
    return { auth, mail, rcpt };
  } finally {
    p.close();
  }
}

test('AUTH through the directory on a running instance: a user binds with the LDAP password and relays as her own addresses; another address 553; a wrong password and an unknown user get the same 535', async () => {
  // Unauthenticated, the same client may not relay.
  const refused = await send(['someone@remote.test'], { sender: 'alice@example.test' });
  assert.match(refused['someone@remote.test'] ?? '', /^550 5\.7\.1 /);
  const ok = await sendAuthenticated('alice', 'alice-ldap-pw', 'ali@example.test', 'relayed-by-alice@remote.test');
  assert.match(ok.auth, /^235 /);
  assert.match(ok.rcpt ?? '', /^250 /);
  await waitFor(() => remote().transactions.some((t) => t.to.includes('relayed-by-alice@remote.test')), { what: 'the authenticated relay at remote.test', timeoutMs: 20_000 });
  const e = mailLog(mta).find((r) => r.event === 'E' && r.recipient === 'relayed-by-alice@remote.test');
  assert.ok(e, 'an E record for the relayed message');
  assert.equal(e.source, 'tcp_auth', 'the session was switched to tcp_auth');
  assert.equal(e.user, 'alice', 'mail.log names the authenticated user');
  const notHers = await sendAuthenticated('alice', 'alice-ldap-pw', 'erin@example.test', 'x@remote.test');
  assert.match(notHers.mail ?? '', /^553 5\.7\.1 /);
  const wrong = await sendAuthenticated('alice', 'not-her-password', 'alice@example.test', 'x@remote.test');
  const unknown = await sendAuthenticated('nobody-here', 'not-her-password', 'alice@example.test', 'x@remote.test');
  assert.match(wrong.auth, /^535 5\.7\.8 /);
  assert.equal(unknown.auth, wrong.auth);
});

test('lists and forwarding: mailboxes, members at other domains routed with the owner as sender, forwarded copies with SRS, unknown members and loops reported', async () => {
  const subject = 'expansion';
  const replies = await send(['alice@example.test', 'bob@example.test', 'carol@example.test', 'staff@example.test', 'selfish@example.test'], { subject });
  assert.ok(Object.values(replies).every((t) => t.startsWith('250 ')), JSON.stringify(replies));
  await waitFor(
    () => withSubject('alice', subject).length === 3 && withSubject('carol', subject).length === 2 && inbox('listowner').length >= 1,
    { timeoutMs: 60_000, what: 'the mailboxes and the owner\'s notice' },
  );
  // alice: direct, through staff, through selfish. carol: direct and through staff.
  assert.equal(withSubject('alice', subject).length, 3);
  const viaStaff = withSubject('alice', subject).find((t) => t.includes('Delivered-To: staff@example.test'))!;
  assert.match(viaStaff, /^Return-Path: <staff-owner@example\.test>\n/, 'list mail has the owner as envelope sender');

  // bob's and carol's forwarding copies (one each: two expansions), staff's members at remote.test (one file, one transaction).
  await waitFor(() => peerGot(remote(), subject).length === 3 && queueFiles(mta).length === 0, { timeoutMs: 60_000, what: 'every remote copy delivered' });
  const copies = peerGot(remote(), subject).map((t) => ({ from: t.from, to: [...t.to].sort().join(' ') }));
  const srs = copies.filter((c) => /^SRS0=/.test(c.from));
  // bob forwards to bob@remote.test, carol to carol@remote.test: mail from outside going back outside gets an SRS sender.
  assert.deepEqual(srs.map((c) => c.to).sort(), ['bob@remote.test', 'carol@remote.test']);
  for (const c of srs) assert.match(c.from, new RegExp(`^SRS0=[^=]{4}=[A-Z2-7]{2}=origin\\.test=sender@${SRS_DOMAIN.replace(/\./g, '\\.')}$`, 'i'));
  // staff's members at remote.test: the owner's mail (no SRS: the owner is ours).
  const owner = copies.filter((c) => c.from === 'staff-owner@example.test').map((c) => c.to);
  assert.deepEqual(owner.join(' ').split(' ').sort(), ['carol@remote.test', 'outside@remote.test']);

  // nobody@example.test is no user: the owner is told, in a DSN.
  const notice = await simpleParser(Buffer.from(inbox('listowner')[0]!, 'latin1'), { keepDeliveryStatus: true });
  const status = notice.attachments.find((a) => a.contentType === 'message/delivery-status')!.content.toString();
  assert.match(status, /Final-Recipient: rfc822; ?nobody@example\.test/i);
  assert.match(status, /Status: 5\.1\.1/);
  // selfish contains itself: the loop is told to the sender (selfish has no owner), alice still got the list's copy.
  const loopNotice = await waitFor(() => origin().transactions.find((t) => t.to.includes(SENDER) && /Status: 5\.4\.6/.test(t.data.toString('latin1'))), { timeoutMs: 30_000, what: 'the loop reported to the sender' });
  assert.equal(loopNotice.from, '');
  assert.match(loopNotice.data.toString('latin1'), /Final-Recipient: rfc822; ?selfish@example\.test/i);
  const records = mailLog(mta);
  assert.ok(records.some((r) => r.event === 'R' && r.recipient === 'nobody@example.test' && /reported to <staff-owner@example\.test>/.test(r.status)), 'an R record for the unknown member');
  assert.ok(records.some((r) => r.event === 'D' && r.recipient === 'staff@example.test' && /copies queued/.test(r.status) && /1 member failed/.test(r.status)));
});

test('a bounce from outside to the SRS address is reversed to the original sender; a forged one is refused; postsrsd with the same secret agrees', async () => {
  const forwarded = peerGot(remote(), 'expansion').find((t) => t.to.includes('bob@remote.test'))!;
  const srsAddress = forwarded.from;
  const srsd = await startPostsrsd({ domain: SRS_DOMAIN, secrets: [SRS_SECRET], host: '127.0.19.40' });
  try {
    assert.deepEqual(await srsd.reverse(srsAddress), { code: 200, value: SENDER });
  } finally {
    await srsd.close();
  }
  const forged = srsAddress.replace(/^SRS0=(.)/, (_, c: string) => `SRS0=${c === 'A' ? 'B' : 'A'}`);
  // remote.test's MTA sends the bounce: from outside INTERNAL_IP, relaying only because the address is ours and verifies.
  const replies = await send([srsAddress, forged], { sender: '', client: REMOTE_MX, subject: 'bounce-back' });
  assert.match(replies[srsAddress]!, /^250 /);
  assert.match(replies[forged]!, /^550 5\.1\.1 Invalid or expired SRS address/);
  const bounce = await waitFor(() => peerGot(origin(), 'bounce-back')[0], { timeoutMs: 30_000, what: 'the bounce at origin.test' });
  assert.deepEqual([bounce.from, bounce.to], ['', [SENDER]]);
  const queued = mailLog(mta).find((r) => r.event === 'E' && r.recipient === SENDER && r.from === '');
  assert.ok(queued, 'queued for the original sender');
});

test('a forwarded copy refused by the remote server: our own DSN to the SRS sender goes to the original sender', async () => {
  const replies = await send(['greg@example.test'], { subject: 'forward-refused' });
  assert.match(replies['greg@example.test']!, /^250 /);
  const dsn = await waitFor(() => origin().transactions.find((t) => t.from === '' && /Final-Recipient: rfc822; ?gone@remote\.test/i.test(t.data.toString('latin1'))), { timeoutMs: 30_000, what: 'the DSN at origin.test' });
  assert.deepEqual(dsn.to, [SENDER]);
  assert.match(dsn.data.toString('latin1'), /Status: 5\.1\.1/);
  assert.ok(mailLog(mta).some((r) => r.event === 'R' && r.recipient === 'gone@remote.test' && /^SRS0=/i.test(r.from)), 'the copy was returned from its SRS sender');
});

test('slapd stopped: 451 4.4.3 at RCPT, the local channel defers (nothing lost, nothing twice); started again: mail flows without a restart', async () => {
  const subject = 'directory-down';
  // Queued while the directory answers, held back from delivery until it is gone.
  assert.equal((await mta.imsimta(['qm', 'stop', 'l'])).code, 0);
  const sentAt = performance.now();
  const accepted = await send(['alice@example.test', 'staff@example.test'], { subject });
  assert.ok(Object.values(accepted).every((t) => t.startsWith('250 ')), JSON.stringify(accepted));
  await slapd.stop();
  // The cache (ALIAS_ENTRY_CACHE_TIMEOUT=1) runs out: RCPT answers 451 4.4.3, never 550. The
  // local channel's answers for alice and staff are older than this send: once it is more than
  // the cache's life ago, the channel must ask the directory for both.
  const probed = ['erin@example.test', 'alice@example.test', 'staff@example.test'];
  const down = await waitFor(
    async () => {
      const r = await rcptReplies(probed);
      for (const t of Object.values(r)) assert.match(t, /^(250|451) /, 'never a permanent refusal');
      return performance.now() - sentAt > 1500 && probed.every((a) => /^451/.test(r[a]!)) ? r : null;
    },
    { timeoutMs: 20_000, intervalMs: 300, what: 'RCPT to fail temporarily' },
  );
  for (const a of probed) assert.match(down[a]!, /^451 4\.4\.3 /);
  assert.equal((await mta.imsimta(['qm', 'start', 'l'])).code, 0);
  const deferred = () => new Set(mailLog(mta).filter((r) => r.event === 'Q' && r.destination === 'l' && /^451 4\.4\.3 /.test(r.status)).map((r) => r.recipient));
  await waitFor(() => deferred().has('alice@example.test') && deferred().has('staff@example.test'), { timeoutMs: 30_000, what: 'the local channel to defer both recipients' });
  assert.equal(withSubject('alice', subject).length, 0);
  assert.equal(peerGot(remote(), subject).length, 0);
  assert.ok(queueFiles(mta, 'l').length >= 1, 'the message is still queued');

  await slapd.start();
  await waitFor(() => withSubject('alice', subject).length === 2 && peerGot(remote(), subject).length === 1 && queueFiles(mta).length === 0, { timeoutMs: 60_000, what: 'delivery once the directory is back' });
  // staff's members at remote.test once each, in one transaction from the owner: the deferred attempt kept nothing.
  assert.deepEqual(peerGot(remote(), subject).map((t) => [t.from, [...t.to].sort()]), [['staff-owner@example.test', ['carol@remote.test', 'outside@remote.test']]]);
  assert.equal(withSubject('carol', subject).length, 1);
  const r = await send(['alice@example.test'], { subject: 'after' });
  assert.match(r['alice@example.test']!, /^250 /, 'RCPT works again');
});

test('slapd hung: the RCPT gets 451 4.4.3 within LDAP_TIMEOUT, and another session is not held up meanwhile', async () => {
  // An address not asked before (nothing cached).
  await slapd.add(userLdif('frank'));
  slapd.pause();
  try {
    const started = performance.now();
    const hung = send(['frank@example.test'], { subject: 'hung' }).then((r) => ({ r, ms: performance.now() - started }));
    // Meanwhile another client's session goes on at once (relaying from the internal address needs no lookup).
    const p = await SmtpProbe.connect(ADDRESS, mta.port, ADDRESS);
    const t0 = performance.now();
    await p.hello('inside.example.test');
    assert.equal((await p.command('MAIL FROM:<erin@example.test>'))?.code, 250);
    assert.equal((await p.command('RCPT TO:<someone@remote.test>'))?.code, 250);
    const other = performance.now() - t0;
    p.close();
    const { r, ms } = await hung;
    assert.match(r['frank@example.test']!, /^451 4\.4\.3 /);
    assert.ok(ms < 5000, `the RCPT answered in ${Math.round(ms)} ms (LDAP_TIMEOUT is 1 s)`);
    assert.ok(other < 1000, `the other session took ${Math.round(other)} ms`);
  } finally {
    slapd.resume();
  }
  await waitFor(async () => /^250/.test((await send(['frank@example.test'], { subject: 'frank-back' }))['frank@example.test']!), { timeoutMs: 20_000, intervalMs: 300, what: 'frank accepted once slapd answers again' });
});
