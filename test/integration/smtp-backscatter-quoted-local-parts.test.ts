// Backscatter from quoted local parts (issue 13, item 4): `RCPT TO:<"alice"@local.test>` got 250
// (the RCPT check unquoted), then local delivery did not find `"alice"`, failed 5.1.1 and sent a
// notice to whatever sender was given. Now one canonical local part is computed at RCPT and both
// sides read it the same way: against a running instance, every spelling of a user that RCPT
// accepts from an outside client with a forged sender is delivered to that user's mailbox, and
// every one it would not deliver is refused at RCPT. Nothing is returned, no notice is queued.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/instance.js';
import { MtaInstance } from '../helpers/running-instance.js';
import { SmtpProbe, readMailLog } from './smtp-harness.js';
import { canonicalLocalPart } from '../../src/rewrite/index.js';

const ADDRESS = '127.0.23.50';
const OUTSIDE = '127.0.23.51';
const SENDER = 'forged-victim@remote.test';
let mta: MtaInstance;

before(async () => {
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! quoted local parts test instance
localhost            $U%localhost@localhost
local.test           $U%$D@localhost
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx spfnone noauthverify
tcp-daemon
`,
  );
  mta.inst.write('etc/option.dat', `INTERNAL_IP=${ADDRESS}/32\nLOCAL_HOST=mx.quoted.test\nBANNER_PURGE_DELAY=0\n`);
  mta.inst.write(
    'etc/aliases',
    ['"sales(team)": alice', '"Bob.Smith": alice', 'support: "Alice"', 'helpdesk: "carol"@localhost', 'program: |/bin/true', 'ghost: nobody, "nobody else"', ''].join('\n'),
  );
  for (const user of ['alice', 'Carol', 'postmaster']) mkdirSync(join(mta.root, 'mailbox', user, 'new'), { recursive: true });
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});
after(async () => {
  await mta?.cleanup();
});

/** Recipient → the mailbox it must reach, or null when RCPT must refuse it (unknown user, bad syntax, an alias delivery cannot follow). */
const CASES: Array<[string, string | null]> = [
  ['"alice"@local.test', 'alice'],
  ['"al\\ice"@local.test', 'alice'], // a quoted-pair is the character itself
  ['"Alice"@local.test', 'alice'],
  ['"ALICE+tag"@local.test', 'alice'],
  ['"alice".@local.test', null], // not a local part at all (501, counted below)
  ['alice@local.test', 'alice'],
  ['carol@local.test', 'Carol'], // the mailbox directory has another case
  ['"CAROL"@local.test', 'Carol'],
  ['"postmaster"@local.test', 'postmaster'],
  ['"sales(team)"@local.test', 'alice'], // an alias whose name needs quotes
  ['"sales\\(team)"@local.test', 'alice'],
  ['"Sales(Team)"@local.test', 'alice'],
  ['bob.smith@local.test', 'alice'], // an alias written quoted, asked for unquoted
  ['"bob.smith"@local.test', 'alice'],
  ['support@local.test', 'alice'], // an alias whose target is quoted
  ['helpdesk@local.test', 'Carol'],
  ['"alice@x"@local.test', null], // the @ is part of the name: nobody is called that
  ['"alice "@local.test', null], // neither is "alice " (smtp-server refuses the space: 501)
  ['" alice"@local.test', null],
  ['"alice\\"@local.test', null],
  ['"al.ice"@local.test', null],
  ['"nobody"@local.test', null],
  ['ghost@local.test', null], // an alias whose members are all unknown delivers to nobody
  ['program@local.test', null], // an alias whose only member is a program, which tsubame does not run: nobody to deliver to
];

/** Sends one message from outside with the forged sender to `cases`, checking each RCPT reply; waits until every queued recipient has its outcome. */
async function sendFromOutside(cases: Array<[string, string | null]>): Promise<void> {
  const p = await SmtpProbe.connect(ADDRESS, mta.port, OUTSIDE);
  try {
    await p.hello('outside.test');
    assert.equal((await p.command(`MAIL FROM:<${SENDER}>`))?.code, 250);
    for (const [rcpt, mailbox] of cases) {
      const r = await p.command(`RCPT TO:<${rcpt}>`);
      if (mailbox === null) assert.match(r?.text ?? '', /^(5\d\d 5|451 4)\.\d\.\d /, `${rcpt} must be refused: ${r?.text}`);
      else assert.equal(r?.code, 250, `${rcpt}: ${r?.text}`);
    }
    assert.equal((await p.command('DATA'))?.code, 354);
    assert.match((await p.command('Subject: quoted local parts\r\n\r\nhello\r\n.'))?.text ?? '', /^250 /);
    assert.equal((await p.command('QUIT'))?.code, 221);
  } finally {
    p.close();
  }
  await waitFor(
    () => {
      const records = mailLog();
      const queued = records.filter((r) => r.event === 'E').length;
      return queued > 0 && records.filter((r) => r.event !== 'E' && r.event !== 'J').length >= queued;
    },
    { timeoutMs: 30_000, what: 'an outcome (D, Q or R) for every queued recipient' },
  );
}

const mailLog = () => readMailLog(join(mta.root, 'log', 'mail.log'));
const delivered = (user: string) => readdirSync(join(mta.root, 'mailbox', user, 'new'));

/** Nothing returned or deferred, no notice queued for the (forged) sender. */
function assertNoBackscatter(): void {
  const records = mailLog();
  assert.deepEqual(records.filter((r) => r.event === 'R' || r.event === 'Q'), [], 'nothing returned or deferred');
  assert.deepEqual(records.filter((r) => r.destination === 'tcp_local'), [], 'no notice queued for the forged sender');
}

test('the issue\'s case: RCPT TO:<"alice"@local.test> from outside is delivered to alice, nothing goes back to the forged sender', async () => {
  await sendFromOutside([['"alice"@local.test', 'alice']]);
  assertNoBackscatter();
  assert.equal(delivered('alice').length, 1);
  const text = readFileSync(join(mta.root, 'mailbox', 'alice', 'new', delivered('alice')[0]!), 'latin1');
  assert.match(text, /^Delivered-To: alice@local\.test\r?$/m, 'queued and delivered in the canonical spelling');
});

test('every spelling RCPT accepts is delivered to its user; the others are refused at RCPT; nothing goes back to a forged sender', async () => {
  const before = new Map(['alice', 'Carol', 'postmaster'].map((u) => [u, delivered(u).length]));
  const earlierForAlice = new Set(delivered('alice'));
  await sendFromOutside(CASES);
  assertNoBackscatter();
  for (const user of new Set(CASES.flatMap(([, m]) => (m ? [m] : [])))) assert.ok(delivered(user).length > before.get(user)!, `nothing new in ${user}`);
  // Queued and delivered in the canonical spelling; the spellings of one address make one copy.
  const copies = delivered('alice').filter((f) => !earlierForAlice.has(f)).map((f) => readFileSync(join(mta.root, 'mailbox', 'alice', 'new', f), 'latin1'));
  const deliveredTo = copies.map((text) => /^Delivered-To: (.*?)\r?$/m.exec(text)?.[1]);
  for (const a of deliveredTo) {
    const local = a!.slice(0, a!.lastIndexOf('@'));
    assert.equal(canonicalLocalPart(local), local, `${a} is queued in its canonical spelling`);
  }
  assert.equal(new Set(deliveredTo.map((a) => a!.toLowerCase())).size, deliveredTo.length, `one copy per address: ${JSON.stringify(deliveredTo)}`);
});
