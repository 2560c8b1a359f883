// Hosted domains from LDAP on a running instance (issue 19, `$V`): a real slapd holding two
// domain entries (objectClass domain, associatedDomain) under ou=Domains and users at both;
// imta.cnf routes a hosted domain to the local channel with `$*  $U%$D@localhost$V` and every
// other host out. The directory down before its first answer: RCPT to a hosted domain is
// 451 4.4.3 (never 550) and `imsimta test -rewrite` says the rule cannot decide; the directory
// up: accepted without a restart, a user unknown there 550 5.1.1, a domain that is not hosted
// refused as relaying; a domain added in LDAP is hosted after DOMAIN_MATCH_CACHE_TIMEOUT without
// a restart; the directory down again: the last set read is used (hosted still hosted, others
// still refused as relaying, not 451).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MtaInstance } from '../helpers/running-instance.js';
import { waitFor } from '../helpers/instance.js';
import { ROOT_DN, ROOT_PASSWORD, startSlapd, SUFFIX, userLdif, type Slapd } from '../helpers/slapd.js';
import { SmtpProbe } from './smtp-harness.js';

const ADDRESS = '127.0.19.101';
const OUTSIDE = '127.0.19.130';

let slapd: Slapd;
let mta: MtaInstance;

function domainLdif(name: string): string {
  const dc = name.split('.')[0]!;
  return `dn: dc=${dc},ou=Domains,${SUFFIX}\nobjectClass: domain\nobjectClass: domainRelatedObject\ndc: ${dc}\nassociatedDomain: ${name}\n`;
}

before(async () => {
  slapd = await startSlapd();
  await slapd.add(
    [
      `dn: ou=Domains,${SUFFIX}\nobjectClass: organizationalUnit\nou: Domains\n`,
      domainLdif('one.test'),
      domainLdif('two.test'),
      userLdif('alice', { mail: 'alice@one.test' }),
      userLdif('bob', { mail: 'bob@two.test' }),
      userLdif('carol', { mail: 'carol@three.test' }),
    ].join('\n'),
  );
  // Down before the MTA first asks: no set is known.
  await slapd.stop();
  mta = await MtaInstance.create({ address: ADDRESS, service: 'MIN_PROCS=1\nMAX_PROCS=1' });
  mta.inst.write(
    'etc/imta.cnf',
    `! hosted domains from the directory
localhost            $U%localhost@localhost
$*                   $U%$D@localhost$V
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon
`,
  );
  mta.inst.write('etc/ldap.secret', `${ROOT_PASSWORD}\n`);
  chmodSync(join(mta.root, 'etc/ldap.secret'), 0o600);
  mta.inst.write(
    'etc/option.dat',
    [
      `INTERNAL_IP=${ADDRESS}/32`,
      'LOCAL_HOST=mx.example.test',
      'BANNER_PURGE_DELAY=0',
      `LDAP_HOST=127.0.0.1:${slapd.port}`,
      `LDAP_USER_ROOT=${SUFFIX}`,
      `LDAP_DOMAIN_ROOT=ou=Domains,${SUFFIX}`,
      `LDAP_USERNAME=${ROOT_DN}`,
      'LDAP_PASSWORD_FILE=ldap.secret',
      'LDAP_TIMEOUT=1',
      'LDAP_RECONNECT_MIN=0.1',
      'LDAP_RECONNECT_MAX=0.5',
      'DOMAIN_MATCH_CACHE_TIMEOUT=1',
      'ALIAS_ENTRY_CACHE_NEGATIVE_TIMEOUT=1',
      '',
    ].join('\n'),
  );
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});

after(async () => {
  await mta?.cleanup();
  await slapd?.remove();
});

/** The reply (code and enhanced code first) to each RCPT of one session from outside; no message is sent. */
async function rcpt(addresses: string[]): Promise<Record<string, string>> {
  const p = await SmtpProbe.connect(ADDRESS, mta.port, OUTSIDE);
  const replies: Record<string, string> = {};
  try {
    await p.hello('client.origin.test');
    assert.equal((await p.command('MAIL FROM:<sender@origin.test>'))?.code, 250);
    for (const a of addresses) replies[a] = (await p.command(`RCPT TO:<${a}>`))?.text ?? 'no reply';
    await p.command('QUIT');
  } finally {
    p.close();
  }
  return replies;
}

function smtpLog(): string {
  const path = join(mta.root, 'log/tcp_smtp_server.log');
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

test('before the first answer: RCPT to a hosted domain is 451 4.4.3 (never 550), test -rewrite says why', async () => {
  const r = await rcpt(['alice@one.test']);
  assert.match(r['alice@one.test']!, /^451 4\.4\.3 /);
  const t = await mta.imsimta(['test', '-rewrite', 'alice@one.test']);
  assert.equal(t.code, 1, t.stdout + t.stderr);
  assert.match(t.stdout, /temporary error: hosted domains unknown \(\$V\/\$Z for one\.test\)/);
  assert.match(t.stdout, /error = .*\(temporary\)/);
});

test('directory up: hosted domains accepted without a restart, unknown user 550 5.1.1, other domains refused as relaying', async () => {
  const pids = (await mta.processes()).map((p) => p.pid).sort();
  await slapd.start();
  await waitFor(async () => (await rcpt(['alice@one.test']))['alice@one.test']!.startsWith('250 ') || null, { timeoutMs: 30_000, intervalMs: 200, what: 'alice@one.test accepted once slapd is up' });
  const r = await rcpt(['alice@one.test', 'bob@two.test', 'nobody@one.test', 'carol@three.test', 'someone@elsewhere.test']);
  assert.match(r['alice@one.test']!, /^250 /);
  assert.match(r['bob@two.test']!, /^250 /);
  assert.match(r['nobody@one.test']!, /^550 5\.1\.1 /);
  assert.match(r['carol@three.test']!, /^550 5\.7\.1 /);
  assert.match(r['someone@elsewhere.test']!, /^550 5\.7\.1 /);
  assert.deepEqual((await mta.processes()).map((p) => p.pid).sort(), pids, 'nothing restarted');
  const hosted = await mta.imsimta(['test', '-rewrite', 'alice@two.test']);
  assert.equal(hosted.code, 0, hosted.stdout + hosted.stderr);
  assert.match(hosted.stdout, /channel = l\b/);
  const other = await mta.imsimta(['test', '-rewrite', 'x@elsewhere.test']);
  assert.match(other.stdout, /failed: \$V: elsewhere\.test is not a hosted domain/);
  assert.match(other.stdout, /channel = tcp_local/);
});

test('a domain added in LDAP is hosted after the refresh interval, without a restart', async () => {
  assert.match((await rcpt(['carol@three.test']))['carol@three.test']!, /^550 5\.7\.1 /);
  await slapd.add(domainLdif('three.test'));
  await waitFor(async () => (await rcpt(['carol@three.test']))['carol@three.test']!.startsWith('250 ') || null, { timeoutMs: 30_000, intervalMs: 200, what: 'carol@three.test accepted after the refresh' });
});

test('directory down after a set was read: the last set is used (hosted stays hosted, the others refused as relaying, not 451)', async () => {
  // Warm the user cache (ALIAS_ENTRY_CACHE_TIMEOUT 600 s): the RCPT then needs only the hosted set.
  assert.match((await rcpt(['bob@two.test']))['bob@two.test']!, /^250 /);
  const logged = smtpLog().length;
  await slapd.stop();
  await waitFor(() => /hosted domains not read[^\n]*"keeping":3|"keeping":3[^\n]*hosted domains not read/.test(smtpLog().slice(logged)) || null, { timeoutMs: 30_000, intervalMs: 200, what: 'a refresh that failed and kept the 3 domains' });
  const r = await rcpt(['bob@two.test', 'carol@three.test', 'someone@elsewhere.test']);
  assert.match(r['bob@two.test']!, /^250 /);
  assert.match(r['carol@three.test']!, /^250 /);
  assert.match(r['someone@elsewhere.test']!, /^550 5\.7\.1 /);
});
