// The rewrite engine against hand-built configurations: one table of cases per feature.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel, ImtaConfig, RewriteRule } from '../../src/config/types.js';
import { compileRewriter, type RewriteContext, type RewriteResult } from '../../src/rewrite/index.js';

// ------------------------------------------------------------------ fixtures

function channel(name: string, hosts: string[], keywords: string[] = []): Channel {
  const kw: Record<string, string[]> = {};
  for (const k of keywords) kw[k] = [];
  return {
    name, keywords: kw, officialHost: hosts[0] ?? name, hosts, file: 'test.cnf', line: 0,
    smtp: name.startsWith('tcp_'), lmtp: false, mx: 'defaultmx', daemon: null, port: null, copies: 'multiple',
    addrsPerFile: null, subdirs: 0, maxJobs: 100, pool: null, threadDepth: 10, filesPerJob: 0, addrsPerJob: 0,
    backoffMs: null, noticesMs: null, immediate: true, tlsClient: 'notls', tlsServer: 'notls', pipelining: true,
    masterDebug: false, slaveDebug: false, senderRewrite: null, rcptPerTransaction: 100, maxClientConnections: 20, dkimSign: false,
  };
}

/** Rules as imta.cnf lines (`pattern template`, `!` comments), then channels. */
function config(rulesText: string, channels: Channel[]): ImtaConfig {
  const rules: RewriteRule[] = [];
  rulesText.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('!')) return;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`bad fixture line ${line}`);
    rules.push({ pattern: m[1]!, template: m[2]!, file: 'test.cnf', line: i + 1 });
  });
  const channelByName = new Map<string, Channel>();
  const hostTable = new Map<string, string>();
  for (const ch of channels) {
    channelByName.set(ch.name.toLowerCase(), ch);
    for (const h of ch.hosts) if (!hostTable.has(h.toLowerCase())) hostTable.set(h.toLowerCase(), ch.name);
  }
  return { rules, channels, channelByName, hostTable };
}

const CHANNELS = [
  channel('l', ['mail.ex.com']),
  channel('tcp_local', ['tcp-daemon']),
  channel('tcp_intranet', ['tcp_intranet-daemon']),
  channel('tcp_lab', ['lab-daemon']),
  channel('tcp_partner', ['relay.partner.org']),
  channel('tcp_bang', ['bang-daemon'], ['bangoverpercent']),
  channel('bitbucket', ['bitbucket-daemon']),
  channel('reprocess', ['reprocess-daemon']),
  channel('tcp_norules', ['norules-daemon'], ['norules']),
];

const MAIN_RULES = `
! local domain
mail.ex.com           $U%mail.ex.com@mail.ex.com
ex.com                $U%$D@mail.ex.com
.ex.com               $U%$H.ex.com@tcp_intranet-daemon
*.lab.ex.com          $U%$&0.lab.ex.com@lab-daemon
.lab.ex.com           $U%$H$D@tcp_intranet-daemon
Sub.EX.org            $U%$D@TCP_INTRANET-DAEMON
.only-sub.org         $U%$H$D@tcp_intranet-daemon
[192.168.]            $U%[192.168.$L]@tcp_intranet-daemon
[10.1.2.3]            $U%$D@tcp_intranet-daemon
[172.16.5.]           $U%[172.16.5.$L]@lab-daemon
[]                    $U%[$L]@tcp-daemon
plus.test             $0U%$D@mail.ex.com
subaddr.test          $1U%$D@mail.ex.com
host.ex.org           $U%$1D@tcp-daemon
.deep.org             $U%$1H.deep.org@tcp-daemon
upper.test            $^$U%$\\$D@tcp-daemon
alias.test            $U@mail.ex.com
routed.test           $U@$D@relay.ex.com@tcp-daemon
via.test              $U@$D@tcp-daemon
env.test              $U%$D@tcp-daemon$E
env.test              $U%$D@mail.ex.com
dir.test              $U%$D@tcp-daemon$F
dir.test              $U%$D@mail.ex.com
src.test              $U%$D@tcp_intranet-daemon$Mtcp_intranet
src.test              $U%$D@tcp-daemon
nsrc.test             $U%$D@tcp-daemon$Ntcp_local
nsrc.test             $U%$D@mail.ex.com
q.test                $U%$D@tcp-daemon$Qtcp_local
q.test                $U%alt.q.test@bitbucket-daemon
c.test                $U%$D@bitbucket-daemon$Ctcp_local
c.test                $U%$D@tcp-daemon
loc.test              $U%$D@tcp-daemon$P
loc.test              $U%$D@mail.ex.com
src-route.test        $U%$D@lab-daemon$S
src-route.test        $U%$D@tcp-daemon
bad.test              $?No mail for this domain
gone.test             $U%$D@nowhere-daemon$?Domain retired
old.test              $U%new.test
new.test              $U%$D@mail.ex.com
loop.test             $U%loop.test
dup.test              $U%$D@lab-daemon
dup.test              $U%$D@tcp-daemon
a.test                $U%$D@lab-daemon
b.test                $U%$D@tcp_intranet-daemon
fields.test           $U%$0X-$3A.$D@tcp-daemon
fail.test             $U%$&5.$D@lab-daemon
fail.test             $U%$D@tcp-daemon
internal.test         $U%$D@lab-daemon$1M
internal.test         $U%$D@tcp-daemon
.                     $U%$H@tcp-daemon
`;

const main = compileRewriter(config(MAIN_RULES, CHANNELS));
const TO: RewriteContext = { sourceChannel: 'tcp_local', direction: 'to' };

interface Case {
  name: string;
  address: string;
  ctx?: Partial<RewriteContext>;
  channel: string | null;
  rewritten?: string | null;
  route?: string | null;
  error?: string | null;
}

function check(rw: ReturnType<typeof compileRewriter>, c: Case): RewriteResult {
  const r = rw.rewrite(c.address, { ...TO, ...c.ctx });
  const why = `${c.name}: ${c.address} → ${JSON.stringify({ channel: r.channel, rewritten: r.rewritten, error: r.error })}\n${r.steps.map((s) => `  ${s.probe}: ${s.outcome}`).join('\n')}`;
  assert.equal(r.channel, c.channel, why);
  if (c.rewritten !== undefined) assert.equal(r.rewritten, c.rewritten, why);
  if (c.route !== undefined) assert.equal(r.route, c.route, why);
  assert.equal(r.error, c.error ?? null, why);
  assert.equal(r.address, c.address);
  return r;
}

function table(title: string, cases: Case[], rw = main): void {
  test(title, () => {
    for (const c of cases) check(rw, c);
  });
}

// ------------------------------------------------------------------ cases

table('exact rules match case-insensitively; the template keeps its case, the local part keeps its case', [
  { name: 'exact', address: 'u@mail.ex.com', channel: 'l', rewritten: 'u@mail.ex.com' },
  { name: 'exact, other case', address: 'Joe.Smith@MAIL.Ex.Com', channel: 'l', rewritten: 'Joe.Smith@mail.ex.com' },
  { name: '$D keeps the case of the address', address: 'U@EX.COM', channel: 'l', rewritten: 'U@EX.COM' },
  { name: 'mixed-case pattern and tag', address: 'u@sub.ex.org', channel: 'tcp_intranet', rewritten: 'u@sub.ex.org' },
  { name: 'trailing dot', address: 'u@ex.com.', channel: 'l', rewritten: 'u@ex.com' },
]);

table('generalisation: exact, then *. and . label by label, then the match-all rule', [
  { name: '.ex.com with $H', address: 'u@sc.cs.ex.com', channel: 'tcp_intranet', rewritten: 'u@sc.cs.ex.com' },
  { name: '*.lab.ex.com beats .lab.ex.com for one label', address: 'u@Host.lab.ex.com', channel: 'tcp_lab', rewritten: 'u@Host.lab.ex.com' },
  { name: '*.lab.ex.com is not probed for two labels', address: 'u@a.b.lab.ex.com', channel: 'tcp_intranet', rewritten: 'u@a.b.lab.ex.com' },
  { name: '.only-sub.org does not match only-sub.org', address: 'u@only-sub.org', channel: 'tcp_local', rewritten: 'u@only-sub.org' },
  { name: '.only-sub.org matches a subdomain ($H$D)', address: 'u@www.only-sub.org', channel: 'tcp_intranet', rewritten: 'u@www.only-sub.org' },
  { name: 'match-all . with $H = whole host', address: 'someone@Example.NET', channel: 'tcp_local', rewritten: 'someone@Example.NET' },
]);

table('the channel host table is consulted after the exact rule, before generalisation', [
  { name: 'host line of a channel', address: 'u@relay.partner.org', channel: 'tcp_partner', rewritten: 'u@relay.partner.org' },
  { name: 'host line, other case', address: 'u@RELAY.Partner.org', channel: 'tcp_partner', rewritten: 'u@RELAY.Partner.org' },
  { name: 'not for subdomains of a host line', address: 'u@x.relay.partner.org', channel: 'tcp_local', rewritten: 'u@x.relay.partner.org' },
  { name: 'a channel tag is a host too', address: 'u@lab-daemon', channel: 'tcp_lab', rewritten: 'u@lab-daemon' },
]);

table('domain literals: exact, [a.b.c.], [a.b.], [a.], [], then .', [
  { name: '[192.168.] with $L', address: 'u@[192.168.1.2]', channel: 'tcp_intranet', rewritten: 'u@[192.168.1.2]' },
  { name: 'exact literal', address: 'u@[10.1.2.3]', channel: 'tcp_intranet', rewritten: 'u@[10.1.2.3]' },
  { name: '[172.16.5.] with $L = last octet', address: 'u@[172.16.5.9]', channel: 'tcp_lab', rewritten: 'u@[172.16.5.9]' },
  { name: '[] catches the rest', address: 'u@[8.8.8.8]', channel: 'tcp_local', rewritten: 'u@[8.8.8.8]' },
  { name: 'IPv6 literal goes to []', address: 'u@[IPv6:2001:db8::1]', channel: 'tcp_local', rewritten: 'u@[IPv6:2001:db8::1]' },
]);

table('substitutions $0U $1U $nD $nH $\\ $^ $nX $nA and single-field failure', [
  { name: '$0U drops the subaddress', address: 'joe+tag@plus.test', channel: 'l', rewritten: 'joe@plus.test' },
  { name: '$0U without subaddress', address: 'joe@plus.test', channel: 'l', rewritten: 'joe@plus.test' },
  { name: '$1U is the subaddress', address: 'joe+tag@subaddr.test', channel: 'l', rewritten: 'tag@subaddr.test' },
  { name: '$1D drops one label', address: 'u@host.ex.org', channel: 'tcp_local', rewritten: 'u@ex.org' },
  { name: '$1H drops one label of the unmatched part', address: 'u@a.b.deep.org', channel: 'tcp_local', rewritten: 'u@b.deep.org' },
  { name: '$^ and $\\ change case', address: 'Joe@UPPER.Test', channel: 'tcp_local', rewritten: 'JOE@upper.test' },
  { name: '$0X mailhost label, $3A address character', address: 'abcd@fields.test', channel: 'tcp_local', rewritten: 'abcd@mail-d.fields.test' },
  { name: 'a missing $&n label fails the rule', address: 'u@fail.test', channel: 'tcp_local', rewritten: 'u@fail.test' },
]);

table('template forms U@C, U@D@C and U@D@R@C', [
  { name: 'U@C', address: 'u@alias.test', channel: 'l', rewritten: 'u@mail.ex.com', route: null },
  { name: 'U@D@R@C', address: 'u@routed.test', channel: 'tcp_local', rewritten: '@relay.ex.com:u@routed.test', route: 'relay.ex.com' },
  { name: 'U@D@C', address: 'u@via.test', channel: 'tcp_local', rewritten: '@tcp-daemon:u@via.test', route: 'tcp-daemon' },
]);

table('host extraction: source routes, %, !, quoted local parts', [
  { name: 'source route: first route host', address: '<@relay.ex.com,@b.org:u@far.org>', channel: 'tcp_intranet', rewritten: '@relay.ex.com,@b.org:u@far.org' },
  { name: 'source route: $S control', address: '@src-route.test:u@far.org', channel: 'tcp_lab', rewritten: '@src-route.test:u@far.org' },
  { name: 'not from a source route', address: 'u@src-route.test', channel: 'tcp_local', rewritten: 'u@src-route.test' },
  { name: '@ beats %', address: 'u%inner.test@mail.ex.com', channel: 'l', rewritten: 'u%inner.test@mail.ex.com' },
  { name: 'percent hack', address: 'u%Example.net', channel: 'tcp_local', rewritten: 'u@Example.net' },
  { name: 'last single % wins, %% is literal', address: 'u%%x%b.test', channel: 'tcp_intranet', rewritten: 'u%%x@b.test' },
  { name: 'bang path', address: 'uucphost!u', channel: 'tcp_local', rewritten: 'u@uucphost' },
  { name: 'A!u%B → B by default', address: 'a.test!u%b.test', channel: 'tcp_intranet', rewritten: 'a.test!u@b.test' },
  { name: 'A!u%B → A with bangoverpercent', address: 'a.test!u%b.test', ctx: { sourceChannel: 'tcp_bang' }, channel: 'tcp_lab', rewritten: 'u%b.test@a.test' },
  { name: 'quoted local part with @', address: '"a@b"@mail.ex.com', channel: 'l', rewritten: '"a@b"@mail.ex.com' },
  { name: 'quoted local part with %', address: '"u%x.test"@ex.com', channel: 'l', rewritten: '"u%x.test"@ex.com' },
]);

table('bare local parts, postmaster and the null sender', [
  { name: 'postmaster without domain', address: 'postmaster', channel: 'l', rewritten: 'postmaster@mail.ex.com' },
  { name: '<Postmaster>', address: '<Postmaster>', channel: 'l', rewritten: 'Postmaster@mail.ex.com' },
  { name: 'bare local part is at the local host', address: 'joe', channel: 'l', rewritten: 'joe@mail.ex.com' },
  { name: 'null sender', address: '<>', ctx: { direction: 'from' }, channel: null, rewritten: '', error: null },
  { name: 'null recipient', address: '<>', channel: null, rewritten: null, error: 'null address is not a valid recipient' },
]);

table('controls $E $B $F $R $M $N $Q $C $P $1M', [
  { name: '$E on an envelope address', address: 'u@env.test', channel: 'tcp_local' },
  { name: '$E fails on a header address', address: 'u@env.test', ctx: { envelope: false }, channel: 'l' },
  { name: '$F on the envelope To', address: 'u@dir.test', channel: 'tcp_local' },
  { name: '$F fails on a From', address: 'u@dir.test', ctx: { direction: 'from' }, channel: 'l' },
  { name: '$M passes for that source channel', address: 'u@src.test', ctx: { sourceChannel: 'tcp_intranet' }, channel: 'tcp_intranet' },
  { name: '$M fails for another source', address: 'u@src.test', channel: 'tcp_local' },
  { name: '$N fails for that source', address: 'u@nsrc.test', channel: 'l' },
  { name: '$N passes for another source', address: 'u@nsrc.test', ctx: { sourceChannel: 'l' }, channel: 'tcp_local' },
  { name: '$Q on a From towards that destination', address: 'u@q.test', ctx: { direction: 'from', destinationChannel: 'tcp_local' }, channel: 'tcp_local', rewritten: 'u@q.test' },
  { name: '$Q fails towards another destination', address: 'u@q.test', ctx: { direction: 'from', destinationChannel: 'l' }, channel: 'bitbucket', rewritten: 'u@alt.q.test' },
  { name: '$Q ignored while rewriting the envelope To', address: 'u@q.test', ctx: { destinationChannel: 'l' }, channel: 'tcp_local' },
  { name: '$Q ignored towards a norules channel', address: 'u@q.test', ctx: { direction: 'from', destinationChannel: 'tcp_norules' }, channel: 'tcp_local' },
  { name: '$C fails towards that destination', address: 'u@c.test', ctx: { direction: 'from', destinationChannel: 'tcp_local' }, channel: 'tcp_local' },
  { name: '$C passes towards another', address: 'u@c.test', ctx: { direction: 'from', destinationChannel: 'l' }, channel: 'bitbucket' },
  { name: '$P: host right of %', address: 'u%loc.test', channel: 'tcp_local', rewritten: 'u@loc.test' },
  { name: '$P fails for a host right of @', address: 'u@loc.test', channel: 'l' },
  { name: '$1M from a reprocessing channel', address: 'u@internal.test', ctx: { sourceChannel: 'reprocess' }, channel: 'tcp_lab' },
  { name: '$1M fails from tcp_local', address: 'u@internal.test', channel: 'tcp_local' },
]);

table('errors: $? texts, meta rules and loops, unroutable addresses, duplicates', [
  { name: '$? only', address: 'u@bad.test', channel: null, rewritten: null, error: 'No mail for this domain' },
  { name: '$? when the tag is no channel host', address: 'u@gone.test', channel: null, error: 'Domain retired' },
  { name: 'meta rule rewrites and starts over', address: 'u@old.test', channel: 'l', rewritten: 'u@new.test' },
  { name: 'meta rule loop', address: 'u@loop.test', channel: null, rewritten: null, error: 'rewrite loop' },
  { name: 'duplicate pattern: first in file wins', address: 'u@dup.test', channel: 'tcp_lab' },
  { name: 'syntax error', address: 'a b@c', channel: null, error: 'syntax error in address: a b@c' },
]);

test('without a match-all rule an unknown domain is unroutable', () => {
  const rw = compileRewriter(config(`
ex.com        $U%$D@mail.ex.com
broken.test   $U%$D@no-such-tag
.ex2.org      $U%$H$D@tcp-daemon
$%            $U%$D@tcp-daemon
`, CHANNELS));
  const cases: Case[] = [
    { name: 'unknown domain', address: 'u@foo.invalid', channel: null, rewritten: null, error: 'illegal host/domain: foo.invalid' },
    { name: 'rule to an unknown tag', address: 'u@broken.test', channel: null, error: 'illegal host/domain: broken.test' },
    { name: '.ex2.org does not match ex2.org', address: 'u@ex2.org', channel: null, error: 'illegal host/domain: ex2.org' },
    { name: 'IP literal without [] or .', address: 'u@[1.2.3.4]', channel: null, error: 'illegal host/domain: [1.2.3.4]' },
    { name: '$% catches an unmatched percent hack', address: 'u%x.test', channel: 'tcp_local', rewritten: 'u@x.test' },
    { name: 'an unmatched bang path is local (B!A@localhost)', address: 'nohost!u', channel: 'l', rewritten: 'nohost!u@mail.ex.com' },
  ];
  for (const c of cases) check(rw, c);
  const r = rw.rewrite('u@broken.test', TO);
  assert.match(r.steps.at(-1)!.outcome, /no channel has the host no-such-tag/);
});

test('$* is tried first wherever it is in the file', () => {
  const rw = compileRewriter(config(`
mail.ex.com   $U%$D@mail.ex.com
.             $U%$H@tcp-daemon
$*            $U%$D@bitbucket-daemon$Mtcp_bad
`, [...CHANNELS, channel('tcp_bad', ['bad-daemon'])]));
  check(rw, { name: '$* applies', address: 'u@mail.ex.com', ctx: { sourceChannel: 'tcp_bad' }, channel: 'bitbucket', rewritten: 'u@mail.ex.com' });
  const r = check(rw, { name: '$* fails, normal rules', address: 'u@mail.ex.com', channel: 'l' });
  assert.equal(r.steps[0]!.probe, '$*');
  assert.match(r.steps[0]!.outcome, /^failed: \$Mtcp_bad/);
});

test('steps name the probes tried and the rule that matched with file:line', () => {
  const r = main.rewrite('u@sc.cs.ex.com', TO);
  assert.deepEqual(r.steps.map((s) => s.probe), ['sc.cs.ex.com', '*.cs.ex.com', '.cs.ex.com', '*.*.ex.com', '.ex.com']);
  const last = r.steps.at(-1)!;
  assert.deepEqual(last.rule, { pattern: '.ex.com', template: '$U%$H.ex.com@tcp_intranet-daemon', file: 'test.cnf', line: 5 });
  assert.match(last.outcome, /channel tcp_intranet/);
});

test('a rule with an invalid template is skipped, not fatal', () => {
  const rw = compileRewriter(config(`
x.test   $U%$D@tcp-daemon$Ybogus
x.test   $U%$D@mail.ex.com
`, CHANNELS));
  const r = check(rw, { name: 'skip bad template', address: 'u@x.test', channel: 'l' });
  assert.match(r.steps[0]!.outcome, /skipped: invalid template/);
});

test('rewriting is fast enough for every RCPT', () => {
  const start = process.hrtime.bigint();
  for (let i = 0; i < 20000; i++) main.rewrite(`user${i}@host${i % 50}.sc.cs.example.com`, TO);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  assert.ok(ms < 3000, `20000 rewrites took ${ms} ms`);
});
