// Open-relay matrix: every address form that has fooled an MTA into relaying (percent hack, bang
// paths, source routes, quoted local parts holding an @, IP literals, trailing dots, case,
// encodings, double @, our domain as a prefix or suffix of a foreign one), sent by a client
// outside INTERNAL_IP (127.0.8.200; INTERNAL_IP=127.0.8.1/32) that greets with our own name and
// uses one of our addresses as sender — and the same rows from the internal client, which may
// relay. One test per row and side; then the accepted recipients of each side are sent a message
// and the queue shows where they went: from the outside, never onto an SMTP channel.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import url from 'node:url';
import { ReliabilityFixture, SmtpProbe, EXTERNAL_IP, INTERNAL_IP, assertReply } from './helpers.js';

interface Row {
  rcpt: string;
  /** Reply (code and enhanced code) for a client outside INTERNAL_IP. */
  external: string;
  /** Reply for an INTERNAL_IP client. */
  internal: string;
  why: string;
}

const REMOTE = '550 5.7.1'; // relaying denied
const NO_USER = '550 5.1.1';
const SYNTAX = '501 5.1.3';
const OK = '250 2.1.5';

const MATRIX: Row[] = [
  { rcpt: 'friend@remote.example', external: REMOTE, internal: OK, why: 'plain foreign domain' },
  { rcpt: 'joe@localhost', external: OK, internal: OK, why: 'a local user (control row)' },
  { rcpt: 'postmaster', external: OK, internal: OK, why: 'RFC 5321 §4.5.1 domainless postmaster' },
  { rcpt: 'postmaster@remote.example', external: REMOTE, internal: OK, why: 'foreign postmaster' },
  // percent hack: `%` is never routing here, only part of a local part nobody has
  { rcpt: 'friend%remote.example@localhost', external: NO_USER, internal: NO_USER, why: 'percent hack on the host name' },
  { rcpt: 'friend%remote.example@local.test', external: NO_USER, internal: NO_USER, why: 'percent hack on a local domain' },
  { rcpt: 'friend%remote.example%localhost@localhost', external: NO_USER, internal: NO_USER, why: 'double percent hack' },
  { rcpt: 'friend%REMOTE.example@LOCALHOST', external: NO_USER, internal: NO_USER, why: 'percent hack, mixed case' },
  { rcpt: 'friend%remote.example@[127.0.8.1]', external: REMOTE, internal: OK, why: 'percent hack on our own IP literal' },
  { rcpt: 'friend%remote.example@hosted.test', external: OK, internal: OK, why: 'percent hack on a hosted (discarding) domain: kept there' },
  // bang paths
  { rcpt: 'remote.example!friend@localhost', external: NO_USER, internal: NO_USER, why: 'bang path on the host name' },
  { rcpt: 'remote.example!friend@local.test', external: NO_USER, internal: NO_USER, why: 'bang path on a local domain' },
  { rcpt: 'localhost!remote.example!friend@localhost', external: NO_USER, internal: NO_USER, why: 'two-hop bang path' },
  { rcpt: 'remote.example!friend', external: SYNTAX, internal: SYNTAX, why: 'bare bang path, no domain' },
  { rcpt: 'remote.example!friend@[127.0.8.1]', external: REMOTE, internal: OK, why: 'bang path on our own IP literal' },
  // source routes (RFC 5321 §3.6.1: accepted and ignored, so only the final address counts)
  { rcpt: '@localhost:friend@remote.example', external: REMOTE, internal: OK, why: 'source route through us to a foreign domain' },
  { rcpt: '@localhost,@local.test:friend@remote.example', external: REMOTE, internal: OK, why: 'two-hop source route' },
  { rcpt: '@remote.example:joe@localhost', external: OK, internal: OK, why: 'source route ending at a local user' },
  // quoted local parts
  { rcpt: '"friend@remote.example"@localhost', external: SYNTAX, internal: SYNTAX, why: 'quoted local part holding an @' },
  { rcpt: '"friend%remote.example"@localhost', external: NO_USER, internal: NO_USER, why: 'quoted percent hack' },
  { rcpt: '"remote.example!friend"@local.test', external: NO_USER, internal: NO_USER, why: 'quoted bang path' },
  { rcpt: '"friend@remote.example"', external: SYNTAX, internal: SYNTAX, why: 'quoted address, no domain' },
  { rcpt: '"friend\\@remote.example"@localhost', external: SYNTAX, internal: SYNTAX, why: 'escaped @ in a quoted local part' },
  { rcpt: '"joe"@localhost', external: OK, internal: OK, why: 'quoted local user (control row)' },
  // IP literals
  { rcpt: 'friend@[127.0.0.1]', external: REMOTE, internal: OK, why: 'loopback literal' },
  { rcpt: 'friend@[127.0.8.1]', external: REMOTE, internal: OK, why: 'our own address as a literal' },
  { rcpt: 'friend@[192.0.2.1]', external: REMOTE, internal: OK, why: 'foreign IPv4 literal' },
  { rcpt: 'friend@[IPv6:::1]', external: REMOTE, internal: OK, why: 'IPv6 loopback literal' },
  { rcpt: 'friend@[IPv6:2001:db8::1]', external: REMOTE, internal: OK, why: 'foreign IPv6 literal' },
  { rcpt: 'friend@127.0.0.1', external: REMOTE, internal: OK, why: 'address without brackets' },
  { rcpt: 'friend@[192.0.2.1.]', external: SYNTAX, internal: SYNTAX, why: 'literal with a trailing dot' },
  // trailing dots
  { rcpt: 'friend@remote.example.', external: SYNTAX, internal: SYNTAX, why: 'foreign domain, trailing dot' },
  { rcpt: 'joe@localhost.', external: SYNTAX, internal: SYNTAX, why: 'our host name, trailing dot' },
  { rcpt: 'friend@remote.example..', external: SYNTAX, internal: SYNTAX, why: 'two trailing dots' },
  // case
  { rcpt: 'friend@REMOTE.EXAMPLE', external: REMOTE, internal: OK, why: 'upper-case foreign domain' },
  { rcpt: 'FRIEND@Remote.Example', external: REMOTE, internal: OK, why: 'mixed-case foreign address' },
  { rcpt: 'JOE@LocalHost', external: OK, internal: OK, why: 'mixed-case local user (control row)' },
  // encodings
  { rcpt: 'friend%25remote.example@localhost', external: NO_USER, internal: NO_USER, why: 'URL-encoded percent' },
  { rcpt: 'friend+25remote.example@localhost', external: NO_USER, internal: NO_USER, why: 'xtext-encoded percent (a subaddress of nobody)' },
  { rcpt: 'friend=remote.example@localhost', external: NO_USER, internal: NO_USER, why: 'SRS-like local part' },
  { rcpt: 'friend@xn--bcher-kva.example', external: REMOTE, internal: OK, why: 'punycode foreign domain' },
  { rcpt: 'friend@remote%2eexample', external: SYNTAX, internal: SYNTAX, why: 'URL-encoded dot in the domain' },
  { rcpt: 'friend@remote.example%00@localhost', external: SYNTAX, internal: SYNTAX, why: 'encoded NUL between two domains' },
  // two @
  { rcpt: 'joe@localhost@remote.example', external: SYNTAX, internal: SYNTAX, why: 'user@local@remote' },
  { rcpt: 'friend@remote.example@localhost', external: SYNTAX, internal: SYNTAX, why: 'user@remote@local' },
  // our names inside foreign ones
  { rcpt: 'friend@localhost.remote.example', external: REMOTE, internal: OK, why: 'our host name as a subdomain of a foreign one' },
  { rcpt: 'friend@local.test.remote.example', external: REMOTE, internal: OK, why: 'our domain as a subdomain of a foreign one' },
  { rcpt: 'friend@remote.example.local.test', external: REMOTE, internal: OK, why: 'an unlisted subdomain of our domain' },
  { rcpt: 'friend@localhostremote.example', external: REMOTE, internal: OK, why: 'our name as a prefix' },
  { rcpt: 'friend@remote-localhost', external: REMOTE, internal: OK, why: 'our name as a suffix' },
  { rcpt: 'friend@localhost:25', external: SYNTAX, internal: SYNTAX, why: 'host:port' },
];

let fx: ReliabilityFixture;

before(async () => {
  // The whole matrix is one transaction of many refused RCPTs: the error limits (smtp-error-limits.test.ts) are off here.
  fx = await ReliabilityFixture.start({ mailboxes: ['joe'], options: 'SMTP_SOFT_ERROR_LIMIT=0\nSMTP_HARD_ERROR_LIMIT=0\n' });
});
after(async () => {
  await fx?.stop();
});

/** Channels whose mail leaves the host over SMTP (tcp_*): an external client must never reach them. */
const SMTP_CHANNELS = ['tcp_local', 'tcp_intranet'];

for (const side of ['external', 'internal'] as const) {
  describe(`${side} client (${side === 'external' ? EXTERNAL_IP : INTERNAL_IP}), greeting as us and sending as postmaster@localhost`, () => {
    let p: SmtpProbe;
    const accepted: string[] = [];

    before(async () => {
      p = await fx.probe(side === 'external' ? EXTERNAL_IP : INTERNAL_IP);
      await p.hello('mx.tsubame.test');
      assertReply(await p.command('MAIL FROM:<postmaster@localhost>'), '250 2.1.0');
    });
    after(() => p?.close());

    for (const row of MATRIX) {
      test(`${row.rcpt} → ${row[side]} (${row.why})`, async () => {
        const r = assertReply(await p.command(`RCPT TO:<${row.rcpt}>`), row[side], row.rcpt);
        if (r.code === 250) accepted.push(row.rcpt);
      });
    }

    test(side === 'external' ? 'the accepted rows are queued only on local and hosted channels, never on an SMTP channel' : 'the accepted rows are queued: foreign ones on tcp_local, local ones on l and bitbucket', async () => {
      const q = fx.queueMark();
      assertReply(await p.command('DATA'), '354 -');
      assertReply(await p.command('Subject: relay matrix\r\n\r\nx\r\n.'), '250 2.0.0');
      const files = q.expect(side === 'external' ? 2 : 3);
      const where = new Map<string, string[]>();
      for (const f of files) {
        const { envelope } = await fx.readQueued(f);
        where.set(envelope.channel, envelope.recipients.map((r) => r.original));
      }
      const expectedRows = MATRIX.filter((r) => r[side] === OK).map((r) => r.rcpt);
      assert.deepEqual(accepted, expectedRows);
      if (side === 'external') {
        assert.deepEqual([...where.keys()].sort(), ['bitbucket', 'l']);
        for (const c of SMTP_CHANNELS) assert.deepEqual(fx.queueFiles(c), [], `nothing on ${c}`);
      } else {
        assert.deepEqual([...where.keys()].sort(), ['bitbucket', 'l', 'tcp_local']);
        const local = MATRIX.filter((r) => r.external === OK).map((r) => r.rcpt);
        // smtp-server keeps one entry per address (case-insensitive, source route dropped)
        const distinct = new Set(expectedRows.filter((r) => !local.includes(r)).map((r) => r.replace(/^@[^:]+:/, '').toLowerCase()));
        assert.equal(where.get('tcp_local')!.length, distinct.size);
      }
    });
  });
}

test('SMTPUTF8 with a UTF-8 foreign domain: 550 5.7.1 from outside, 250 2.1.5 from inside', async () => {
  const rcpt = Buffer.concat([Buffer.from('RCPT TO:<friend@'), Buffer.from('bücher.example', 'utf8'), Buffer.from('>\r\n')]);
  for (const [from, expected] of [[EXTERNAL_IP, REMOTE], [INTERNAL_IP, OK]] as const) {
    const p = await fx.probe(from);
    try {
      await p.hello();
      assertReply(await p.command('MAIL FROM:<a@client.test> SMTPUTF8'), '250 2.1.0');
      p.write(rcpt);
      assertReply(await p.reply(), expected, from);
    } finally {
      p.close();
    }
  }
});

test('an external client cannot claim an internal address: XCLIENT and XFORWARD are refused (500 5.5.2) and relaying stays denied', async () => {
  const p = await fx.probe(EXTERNAL_IP);
  try {
    await p.hello();
    assertReply(await p.command(`XCLIENT ADDR=${INTERNAL_IP} NAME=mx.tsubame.test`), '500 5.5.2');
    assertReply(await p.command(`XFORWARD ADDR=${INTERNAL_IP}`), '500 5.5.2');
    assertReply(await p.command('EHLO mx.tsubame.test'), '250 -');
    assertReply(await p.command('MAIL FROM:<postmaster@localhost>'), '250 2.1.0');
    assertReply(await p.command('RCPT TO:<friend@remote.example>'), REMOTE);
  } finally {
    p.close();
  }
});

test('every external relay refusal is in mail.log as a J record with 550 5.7.1', async () => {
  // as logged: the route dropped, the domain as smtp-server decoded it (A-labels become U-labels)
  const logged = (rcpt: string) => domainToUnicode(rcpt.replace(/^@[^:]+:/, '').toLowerCase());
  const j = fx.mailLog().filter((r) => r.event === 'J' && r.source === 'tcp_local' && r.status.startsWith('550 5.7.1'));
  const seen = new Set(j.map((r) => logged(r.recipient)));
  for (const row of MATRIX.filter((r) => r.external === REMOTE)) assert.ok(seen.has(logged(row.rcpt)), `J record for ${row.rcpt} (seen: ${[...seen].join(', ')})`);
});

/** `user@xn--…` → `user@ü…` (other forms unchanged). */
function domainToUnicode(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0 || !address.includes('xn--')) return address;
  return `${address.slice(0, at)}@${url.domainToUnicode(address.slice(at + 1))}`;
}
