// Hosted domains in the rewrite rules (issue 19): the `$V` and `$Z` controls in the template
// grammar, the rewriter asking a given set (a hosted domain, one that is not, one not known yet:
// a temporary error that routes nowhere), the files source's set, the LDAP search's filter and
// the domains it reads from entries, and the options that configure it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Channel, ImtaConfig, InstanceConfig, RewriteRule } from '../../src/config/types.js';
import { checkTemplate, compileRewriter, compileTemplate, routeRecipient, rulesAskHostedDomains, type HostedDomains } from '../../src/rewrite/index.js';
import { domainSearchFilter, domainsOfEntries, filesHostedDomains } from '../../src/directory/hosted-domains.js';
import { parseOptionDat } from '../../src/config/option-dat.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

function channel(name: string, hosts: string[]): Channel {
  return {
    name, keywords: {}, officialHost: hosts[0] ?? name, hosts, file: 'test.cnf', line: 0,
    smtp: name.startsWith('tcp_'), lmtp: false, mx: 'defaultmx', daemon: null, port: null, copies: 'multiple',
    addrsPerFile: null, subdirs: 0, maxJobs: 100, pool: null, threadDepth: 10, filesPerJob: 0, addrsPerJob: 0,
    backoffMs: null, noticesMs: null, immediate: true, tlsClient: 'notls', tlsServer: 'notls', pipelining: true,
    masterDebug: false, slaveDebug: false, senderRewrite: null, rcptPerTransaction: 100, maxClientConnections: 20, dkimSign: false,
  };
}

function imta(rulesText: string): ImtaConfig {
  const rules: RewriteRule[] = rulesText.trim().split('\n').map((line, i) => {
    const [pattern, template] = line.trim().split(/\s+/) as [string, string];
    return { pattern, template, file: 'test.cnf', line: i + 1 };
  });
  const channels = [channel('l', ['mail.ex.com', 'localhost']), channel('tcp_local', ['tcp-daemon']), channel('tcp_intranet', ['tcp_intranet-daemon'])];
  const channelByName = new Map(channels.map((c) => [c.name, c]));
  const hostTable = new Map<string, string>();
  for (const c of channels) for (const h of c.hosts) hostTable.set(h, c.name);
  return { rules, channels, channelByName, hostTable };
}

/** A set as the directory would keep it; null: nothing read yet. */
function given(domains: string[] | null): HostedDomains & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    isHostedDomain: (d) => {
      asked.push(d);
      return domains === null ? null : domains.includes(d);
    },
  };
}

// Hosted domains to the local channel, others out; a rule of its own refuses what is hosted under a sub-domain name.
const RULES = `
$*              $U%$D@mail.ex.com$V
.ex.com         $U%$H.ex.com@tcp_intranet-daemon$Z
.ex.com         $?hosted-sub-domain-refused
.               $U%$H@tcp-daemon
`;
const to = { sourceChannel: 'tcp_local', direction: 'to' } as const;

test('$V and $Z compile as controls and only as controls; checkTemplate accepts them', () => {
  assert.deepEqual(compileTemplate('$U%$D@mail.ex.com$V').controls, [{ kind: 'hosted' }]);
  assert.deepEqual(compileTemplate('$Z$U%$D@mail.ex.com').controls, [{ kind: 'not-hosted' }]);
  assert.equal(compileTemplate('$E$F$V$U%$H@l').form, 'user-percent-domain-at-channel');
  assert.equal(checkTemplate('$U%$D@mail.ex.com$V$Z'), null);
  assert.equal(checkTemplate('$Y$U@x'), 'unknown substitution or control $Y');
  assert.equal(rulesAskHostedDomains(imta(RULES)), true);
  assert.equal(rulesAskHostedDomains(imta('.  $U%$H@tcp-daemon')), false);
});

test('$V: a hosted domain goes to the local channel, any other host falls through to the next rule', () => {
  const hosted = given(['one.test', 'two.test']);
  const r = compileRewriter(imta(RULES), { hostedDomains: hosted });
  const one = r.rewrite('alice@One.Test.', to);
  assert.equal(one.channel, 'l');
  assert.equal(one.rewritten, 'alice@One.Test');
  assert.equal(one.error, null);
  assert.ok(hosted.asked.includes('one.test'), 'asked in lower case without the trailing dot');
  const two = r.rewrite('bob@two.test', to);
  assert.equal(two.channel, 'l');
  const other = r.rewrite('carol@elsewhere.test', to);
  assert.equal(other.channel, 'tcp_local');
  assert.match(other.steps[0]!.outcome, /^failed: \$V: elsewhere\.test is not a hosted domain/);
  // A domain literal is never hosted.
  assert.equal(r.rewrite('x@[192.0.2.1]', to).channel, 'tcp_local');
});

test('$Z: the rule applies only to a host that is not hosted', () => {
  const r = compileRewriter(imta(RULES), { hostedDomains: given(['hosted.ex.com']) });
  const plain = r.rewrite('u@host.ex.com', to);
  assert.equal(plain.channel, 'tcp_intranet');
  // hosted.ex.com: $V sends it to l first; the $Z rule is reached only through the .ex.com probe.
  assert.equal(r.rewrite('u@hosted.ex.com', to).channel, 'l');
  const zOnly = compileRewriter(imta('.ex.com  $U%$H.ex.com@tcp_intranet-daemon$Z\n.ex.com  $?hosted-sub-domain-refused'), { hostedDomains: given(['hosted.ex.com']) });
  const refused = zOnly.rewrite('u@hosted.ex.com', to);
  assert.equal(refused.channel, null);
  assert.equal(refused.error, 'hosted-sub-domain-refused');
  assert.ok(refused.steps.some((s) => /^failed: \$Z: hosted\.ex\.com is a hosted domain/.test(s.outcome)), JSON.stringify(refused.steps));
  assert.equal(zOnly.rewrite('u@plain.ex.com', to).channel, 'tcp_intranet');
});

test('hosted domains not known yet: a temporary error that routes nowhere, never the next rule', () => {
  for (const hostedDomains of [given(null), undefined]) {
    const r = compileRewriter(imta(RULES), hostedDomains ? { hostedDomains } : {});
    const res = r.rewrite('alice@one.test', to);
    assert.equal(res.channel, null);
    assert.equal(res.temporary, true);
    assert.match(res.error ?? '', /hosted domains unknown/);
    const route = routeRecipient(res, imta(RULES).channelByName);
    assert.deepEqual(route, { ok: false, error: res.error, temporary: true });
  }
  // A rule whose other controls fail does not ask: `$F` (forward only) on a backward rewrite.
  const hosted = given(null);
  const r = compileRewriter(imta('$*  $F$U%$D@mail.ex.com$V\n.  $U%$H@tcp-daemon'), { hostedDomains: hosted });
  const from = r.rewrite('alice@one.test', { sourceChannel: 'tcp_local', direction: 'from' });
  assert.equal(from.channel, 'tcp_local');
  assert.equal(from.temporary, undefined);
  assert.deepEqual(hosted.asked, []);
});

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

test('files source: the local channel host names, LOCAL_HOST, domains routed to l and etc/users address domains', () => {
  const config = {
    imta: imta('example.org  $U%$D@mail.ex.com\n.  $U%$H@tcp-daemon'),
    options: { localHost: 'mx.ex.com' },
    users: { file: null, users: new Map([['ann', { name: 'ann', hash: null, addresses: ['ann@Users.Test', 'bad@[192.0.2.1]'], admin: false, file: 'users', line: 1 }]]) },
  } as unknown as Pick<InstanceConfig, 'imta' | 'options' | 'users'>;
  const set = filesHostedDomains(config);
  for (const d of ['mail.ex.com', 'localhost', 'mx.ex.com', 'example.org', 'users.test']) assert.equal(set.isHostedDomain(d), true, d);
  assert.equal(set.isHostedDomain('elsewhere.test'), false);
});

test('LDAP: the domain search filter and the names read from entries', () => {
  assert.equal(
    domainSearchFilter({ objectClasses: [['sunManagedOrganization'], ['domain']], attributes: ['sunPreferredDomain', 'associatedDomain'] }),
    '(&(|(objectClass=sunManagedOrganization)(objectClass=domain))(|(sunPreferredDomain=*)(associatedDomain=*)))',
  );
  const entries = [
    { dn: 'dc=one', associateddomain: ['One.Test.', 'alias-one.test'], sunPreferredDomain: 'one.test' },
    { dn: 'dc=two', associatedDomain: 'two.test' },
    { dn: 'dc=bad', associatedDomain: ['not a domain', '*)(dc=*'] },
  ];
  assert.deepEqual([...domainsOfEntries(entries, ['sunPreferredDomain', 'associatedDomain'])].sort(), ['alias-one.test', 'one.test', 'two.test']);
});

test('LDAP options: LDAP_DOMAIN_ROOT defaults to the dc= suffix of LDAP_USER_ROOT; the others are checked', () => {
  const parse = (text: string) => {
    const inst = makeInstance({ files: { 'etc/option.dat': text } });
    instances.push(inst);
    const diagnostics: Diagnostic[] = [];
    const ldap = parseOptionDat(join(inst.root, 'etc/option.dat'), diagnostics).ldap!;
    return { ldap, messages: diagnostics.map((d) => `${d.line}: ${d.message}`) };
  };
  const base = 'LDAP_HOST=ldap.example.com\nLDAP_USER_ROOT=ou=People, dc=example,dc=com\n';
  const d = parse(base);
  assert.deepEqual(d.messages, []);
  assert.deepEqual(d.ldap.domains, { root: 'dc=example,dc=com', objectClasses: [['sunManagedOrganization'], ['domain']], attributes: ['sunPreferredDomain', 'associatedDomain'], refreshMs: 600_000 });
  const set = parse(`${base}LDAP_DOMAIN_ROOT=o=domains\nLDAP_DOMAIN_OBJECT_CLASSES=domain+domainRelatedObject\nLDAP_ATTR_DOMAIN1_SCHEMA2=associatedDomain\nLDAP_ATTR_DOMAIN2_SCHEMA2=associatedDomain\nDOMAIN_MATCH_CACHE_TIMEOUT=2\n`);
  assert.deepEqual(set.messages, []);
  assert.deepEqual(set.ldap.domains, { root: 'o=domains', objectClasses: [['domain', 'domainRelatedObject']], attributes: ['associatedDomain'], refreshMs: 2000 });
  const bad = parse(`${base}LDAP_DOMAIN_ROOT=example.com\nLDAP_ATTR_DOMAIN2_SCHEMA2=a(b\nDOMAIN_MATCH_CACHE_TIMEOUT=0\n`);
  assert.deepEqual(bad.messages, [
    '3: LDAP_DOMAIN_ROOT "example.com" is not a DN (attribute=value, …)',
    '4: LDAP_ATTR_DOMAIN2_SCHEMA2 must name an LDAP attribute (letters, digits and -, or an OID), found "a(b"',
    '5: DOMAIN_MATCH_CACHE_TIMEOUT must be a number of seconds from 1 to 2147483, found "0"',
  ]);
  assert.equal(bad.ldap.domains.root, 'dc=example,dc=com');
  assert.equal(parse('LDAP_HOST=h\nLDAP_USER_ROOT=o=example.com\n').ldap.domains.root, 'o=example.com');
});
