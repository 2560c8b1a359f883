// etc/option.dat, etc/aliases, CIDR networks, ISO 8601 durations, and the checks load.ts makes
// across files — with the exact file:line and severity of every problem.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { parseOptionDat, OPTION_DEFAULTS } from '../../src/config/option-dat.js';
import { parseAliases } from '../../src/config/aliases.js';
import { parseCidr, ipInCidrs } from '../../src/common/cidr.js';
import { parseIsoDuration } from '../../src/config/durations.js';
import { loadInstanceConfig, loadInstanceConfigOrThrow } from '../../src/config/load.js';
import { checkAccess, checkPortAccess, compileMappings } from '../../src/mappings/index.js';
import { deliverySettings } from '../../src/delivery/settings.js';
import type { Diagnostic } from '../../src/config/types.js';
import { chmodSync, readFileSync } from 'node:fs';
import { makeInstance, repoRoot, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});
function instance(files: Record<string, string>): TestInstance {
  const inst = makeInstance({ files });
  instances.push(inst);
  return inst;
}
const lines = (...l: string[]) => `${l.join('\n')}\n`;
const whereOf = (root: string, diagnostics: Diagnostic[]) => diagnostics.map((d) => `${relative(root, d.file)}:${d.line}: ${d.severity}`);

function options(text: string) {
  const inst = instance({ 'etc/option.dat': text });
  const diagnostics: Diagnostic[] = [];
  const config = parseOptionDat(join(inst.root, 'etc/option.dat'), diagnostics);
  return { config, diagnostics, where: whereOf(inst.root, diagnostics) };
}

// ---------------------------------------------------------------- option.dat

test('option.dat: comment lines start with ! # or ; (after white space); values are read as written', () => {
  const { config, diagnostics } = options(
    lines(
      '! bang comment',
      '# hash comment',
      '; semicolon comment',
      '   # indented comment',
      '',
      'local_host=Mail.Example.COM',
      'MAX_MESSAGE_SIZE=16%100000',
      'MAX_RECIPIENTS = 50',
      'BANNER_PURGE_DELAY=0.5',
      'BANNER_PURGE_DELAY_INTERNAL=0',
      'SMTP_TIMEOUT=30',
      'MAX_MESSAGES_PER_SESSION=3',
      'MAX_BAD_COMMANDS=4',
      'MAX_CONNS_PER_IP=5',
      'METRICS_PORT=9125',
      'FAST_FLUSH_DOMAINS=@Customer.example, other.example',
      'ETRN_ALLOW=127.0.1.0/24',
      'RETURN_UNITS=1',
      'BLOCK_SIZE=1024',
    ),
  );
  assert.deepEqual(diagnostics, []);
  assert.equal(config.localHost, 'mail.example.com');
  assert.equal(config.maxMessageSize, 0x100000);
  assert.equal(config.maxRecipients, 50);
  assert.deepEqual([config.bannerPurgeDelayMs, config.bannerPurgeDelayInternalMs, config.smtpTimeoutMs], [500, 0, 30000]);
  assert.deepEqual([config.maxMessagesPerSession, config.maxBadCommands, config.maxConnsPerIp, config.metricsPort], [3, 4, 5, 9125]);
  assert.deepEqual(config.fastFlushDomains, ['customer.example', 'other.example']);
  assert.deepEqual(config.etrnAllow.map((c) => c.text), ['127.0.1.0/24']);
  assert.equal(config.raw.RETURN_UNITS, '1');
  assert.equal(config.raw.BLOCK_SIZE, '1024');
  assert.equal(config.raw.LOCAL_HOST, 'Mail.Example.COM');
});

test('option.dat missing: every option has its default', () => {
  const diagnostics: Diagnostic[] = [];
  const config = parseOptionDat(null, diagnostics);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.internalIp.map((c) => c.text), ['127.0.0.0/8', '::1']);
  assert.deepEqual(config.dnsServers, []);
  assert.equal(config.localHost, hostname().toLowerCase());
  assert.deepEqual(
    [config.maxMessageSize, config.maxRecipients, config.maxMessagesPerSession, config.maxBadCommands, config.maxConnsPerIp],
    [OPTION_DEFAULTS.MAX_MESSAGE_SIZE, 1000, 1000, 10, 50],
  );
  assert.deepEqual([config.bannerPurgeDelayMs, config.bannerPurgeDelayInternalMs, config.smtpTimeoutMs], [100, 0, 300000]);
  assert.deepEqual([config.tlsKeyFile, config.tlsCertFile, config.fastFlushDomains, config.etrnAllow, config.metricsPort], [null, null, null, [], null]);
  assert.deepEqual(config.etrnChannelAllow.map((c) => c.text), ['127.0.0.0/8', '::1'], 'ETRN #channel: INTERNAL_IP by default');
  assert.equal(config.etrnRateLimit, 10);
});

test('ETRN_CHANNEL_ALLOW follows INTERNAL_IP unless set; ETRN_RATE_LIMIT is a whole number (0 = no limit)', () => {
  const parse = options;
  assert.deepEqual(parse('INTERNAL_IP=192.0.2.0/24\n').config.etrnChannelAllow.map((c) => c.text), ['192.0.2.0/24']);
  const set = parse('INTERNAL_IP=192.0.2.0/24\nETRN_CHANNEL_ALLOW=198.51.100.7\nETRN_RATE_LIMIT=0\n');
  assert.deepEqual(set.config.etrnChannelAllow.map((c) => c.text), ['198.51.100.7']);
  assert.equal(set.config.etrnRateLimit, 0);
  const bad = parse('ETRN_RATE_LIMIT=lots\nETRN_CHANNEL_ALLOW=nowhere\n');
  assert.deepEqual(bad.where.sort(), ['etc/option.dat:1: error', 'etc/option.dat:2: error']);
});

test('INTERNAL_IP: a list of IPv4 and IPv6 networks and hosts, continued over lines; a bad entry is an error at its line', () => {
  const good = options(lines('INTERNAL_IP=127.0.1.0/24, 10.0.0.0/8 \\', '! a comment inside the continuation', '  2001:db8::/32,::1,192.0.2.7'));
  assert.deepEqual(good.diagnostics, []);
  assert.deepEqual(good.config.internalIp.map((c) => [c.text, c.family, c.prefix]), [
    ['127.0.1.0/24', 4, 24],
    ['10.0.0.0/8', 4, 8],
    ['2001:db8::/32', 6, 32],
    ['::1', 6, 128],
    ['192.0.2.7', 4, 32],
  ]);
  const bad = options(lines('! relay networks', 'INTERNAL_IP=127.0.0.0/8,10.0.0.0/33,example.com'));
  assert.deepEqual(bad.where, ['etc/option.dat:2: error', 'etc/option.dat:2: error']);
  assert.match(bad.diagnostics[0]!.message, /INTERNAL_IP: "10\.0\.0\.0\/33" is not an IP address or network/);
  assert.match(bad.diagnostics[1]!.message, /INTERNAL_IP: "example\.com" is not an IP address or network/);
  assert.deepEqual(bad.config.internalIp.map((c) => c.text), ['127.0.0.0/8']);
});

test('DNS_SERVERS: ip, ip:port, IPv6, [IPv6]:port; anything else is an error at its line', () => {
  const good = options(lines('DNS_SERVERS=127.0.1.53, 127.0.1.54:5353 ::1 [2001:db8::53]:53 [::1]'));
  assert.deepEqual(good.diagnostics, []);
  assert.deepEqual(good.config.dnsServers, ['127.0.1.53', '127.0.1.54:5353', '::1', '[2001:db8::53]:53', '[::1]']);
  const bad = options(lines('#', 'DNS_SERVERS=ns.example.com,127.0.1.53:0,127.0.1.53:70000,[127.0.1.53]:53,999.1.1.1'));
  assert.deepEqual(bad.where, Array(5).fill('etc/option.dat:2: error'));
  assert.match(bad.diagnostics[0]!.message, /DNS_SERVERS: "ns\.example\.com" is not ip/);
  assert.deepEqual(bad.config.dnsServers, []);
});

test('TLS_KEY without TLS_CERT (and the reverse) is an error at the line of the one given', () => {
  const keyOnly = options(lines('! tls', 'TLS_KEY=/etc/ssl/private/mail.key'));
  assert.deepEqual(keyOnly.where, ['etc/option.dat:2: error']);
  assert.match(keyOnly.diagnostics[0]!.message, /TLS_KEY and TLS_CERT must be set together/);
  const certOnly = options(lines('TLS_CERT=/etc/ssl/certs/mail.pem'));
  assert.deepEqual(certOnly.where, ['etc/option.dat:1: error']);
  const both = options(lines('TLS_KEY=/k.pem', 'TLS_CERT=/c.pem'));
  assert.deepEqual(both.diagnostics, []);
  assert.deepEqual([both.config.tlsKeyFile, both.config.tlsCertFile], ['/k.pem', '/c.pem']);
});

test('option.dat problems: bad numbers, names and units are errors; unknown options warnings; sections are not allowed', () => {
  const { where, diagnostics, config } = options(
    lines(
      'MAX_MESSAGE_SIZE=10M', // 1
      'SMTP_TIMEOUT=soon', // 2
      'RETURN_UNITS=2', // 3
      'LOCAL_HOST=bad_host!', // 4
      'METRICS_PORT=70000', // 5
      'SMTP_CONNECT_TIMEOUT=-1', // 6
      'DNS_TIMEOUT=', // 7
      'FROBNICATE=1', // 8
      '[SERVICE=SMTP]', // 9
      'just words', // 10
      'LOG_KEEP_DAYS=a week', // 11
    ),
  );
  assert.deepEqual(where, [
    'etc/option.dat:9: error',
    'etc/option.dat:10: error',
    'etc/option.dat:8: warning',
    'etc/option.dat:6: error',
    'etc/option.dat:7: error',
    'etc/option.dat:11: error',
    'etc/option.dat:3: error',
    'etc/option.dat:4: error',
    'etc/option.dat:1: error',
    'etc/option.dat:2: error',
    'etc/option.dat:5: error',
  ]);
  const m = diagnostics.map((d) => d.message);
  assert.match(m[0]!, /unknown section type SERVICE \(expected none\)/);
  assert.match(m[1]!, /expected OPTION=value, found "just words"/);
  assert.match(m[2]!, /unknown option FROBNICATE \(ignored\)/);
  assert.match(m[3]!, /SMTP_CONNECT_TIMEOUT must be a number of seconds, found "-1"/);
  assert.match(m[4]!, /DNS_TIMEOUT must be a number of seconds, found ""/);
  assert.match(m[5]!, /LOG_KEEP_DAYS must be a whole number ≥ 0, found "a week"/);
  assert.match(m[6]!, /RETURN_UNITS must be 0 \(days\) or 1 \(hours\), found "2"/);
  assert.match(m[7]!, /LOCAL_HOST must be a host name, found "bad_host!"/);
  assert.match(m[8]!, /MAX_MESSAGE_SIZE must be an integer ≥ 1, found "10M"/);
  assert.match(m[9]!, /SMTP_TIMEOUT must be a number of seconds, found "soon"/);
  assert.match(m[10]!, /METRICS_PORT must be an integer from 1 to 65535, found "70000"/);
  assert.equal(config.maxMessageSize, 10240000);
  assert.equal(config.smtpTimeoutMs, 300000);
});

test('delivery timeouts in option.dat reach the delivery engine in milliseconds (fractions allowed)', () => {
  const { config, diagnostics } = options(lines('SMTP_CONNECT_TIMEOUT=2.5', 'SMTP_DATA_TIMEOUT=60', 'DNS_ATTEMPTS=3', 'DNS_MAX_TTL=3600'));
  assert.deepEqual(diagnostics, []);
  const s = deliverySettings(config);
  assert.deepEqual(
    [s.connectTimeoutMs, s.greetingTimeoutMs, s.commandTimeoutMs, s.dataTimeoutMs, s.idleTimeoutMs, s.hostRetryMs, s.dnsTimeoutMs, s.dnsAttempts, s.dnsNegativeTtlMs, s.dnsMaxTtlMs],
    [2500, 300000, 300000, 60000, 5000, 300000, 5000, 3, 60000, 3600000],
  );
});

// ---------------------------------------------------------------- aliases

test('aliases: name: targets, # comments, continuation lines, case-insensitive names; problems at their lines', () => {
  const inst = instance({
    'etc/aliases': lines(
      '# aliases',
      'Postmaster: root',
      'team: alice, bob,',
      '   carol',
      '  # a comment between entries',
      '"quoted name": dave',
      'no-colon here',
      'empty:',
      'team: eve',
    ),
  });
  const diagnostics: Diagnostic[] = [];
  const aliases = parseAliases(join(inst.root, 'etc/aliases'), diagnostics);
  assert.deepEqual([...aliases.entries()], [
    ['postmaster', ['root']],
    ['team', ['eve']],
    ['quoted name', ['dave']],
  ]);
  assert.deepEqual(whereOf(inst.root, diagnostics), ['etc/aliases:7: error', 'etc/aliases:8: error', 'etc/aliases:9: warning']);
  assert.match(diagnostics[0]!.message, /expected "name: target, …", found "no-colon here"/);
  assert.match(diagnostics[2]!.message, /alias team is defined again; the later definition wins/);
});

test('aliases: the continuation joins its targets; no file means no aliases; an unreadable file is an error', () => {
  const inst = instance({ 'etc/aliases': lines('list: a,', '\tb, c') });
  const d1: Diagnostic[] = [];
  assert.deepEqual(parseAliases(join(inst.root, 'etc/aliases'), d1).get('list'), ['a', 'b', 'c']);
  assert.deepEqual(d1, []);
  assert.equal(parseAliases(null, d1).size, 0);
  const d2: Diagnostic[] = [];
  parseAliases(join(inst.root, 'etc'), d2); // a directory
  assert.deepEqual(d2.map((d) => [d.line, d.severity]), [[0, 'error']]);
  assert.match(d2[0]!.message, /cannot read file: EISDIR/);
});

// ---------------------------------------------------------------- cidr, durations

test('parseCidr: networks and hosts, IPv4 and IPv6; malformed ones are null', () => {
  const c = parseCidr('192.0.2.77/24')!;
  assert.deepEqual([c.family, c.prefix, [...c.bytes]], [4, 24, [192, 0, 2, 0]]);
  const h = parseCidr(' 192.0.2.7 ')!;
  assert.deepEqual([h.text, h.prefix], ['192.0.2.7', 32]);
  const v6 = parseCidr('2001:db8:ffff::1/40')!;
  assert.deepEqual([v6.family, v6.prefix, [...v6.bytes.slice(0, 6)]], [6, 40, [0x20, 0x01, 0x0d, 0xb8, 0xff, 0]]);
  assert.equal(parseCidr('::/0')!.prefix, 0);
  for (const bad of ['', 'example.com', '10.0.0.0/33', '::1/129', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/x', '10.0.0', '300.1.1.1', '1.2.3.4/-1']) {
    assert.equal(parseCidr(bad), null, bad);
  }
});

test('ipInCidrs: IPv4, IPv6, and IPv4-mapped IPv6 addresses as sockets report them', () => {
  const nets = ['127.0.1.0/24', '10.0.0.0/8', '2001:db8::/32', '::1'].map((t) => parseCidr(t)!);
  const yes = ['127.0.1.1', '127.0.1.255', '10.200.3.4', '2001:db8::1', '2001:DB8:ffff::9', '::1', '::ffff:127.0.1.9', '::FFFF:10.1.2.3', '0:0:0:0:0:0:0:1'];
  const no = ['127.0.2.1', '11.0.0.1', '2001:db9::1', '::2', '::ffff:127.0.2.1', 'garbage', '', '::ffff:1.2.3'];
  for (const ip of yes) assert.equal(ipInCidrs(ip, nets), true, ip);
  for (const ip of no) assert.equal(ipInCidrs(ip, nets), false, ip);
  // A network written in mapped form is the IPv4 network; prefixes cut inside a byte work.
  const mapped = [parseCidr('::ffff:192.0.2.0/120')!];
  assert.equal(ipInCidrs('192.0.2.200', mapped), true);
  assert.equal(ipInCidrs('::ffff:192.0.2.1', mapped), true);
  assert.equal(ipInCidrs('192.0.3.1', mapped), false);
  const odd = [parseCidr('192.0.2.64/26')!];
  assert.deepEqual(['192.0.2.63', '192.0.2.64', '192.0.2.127', '192.0.2.128'].map((ip) => ipInCidrs(ip, odd)), [false, true, true, false]);
  assert.equal(ipInCidrs('127.0.0.1', []), false);
  assert.equal(ipInCidrs('8.8.8.8', [parseCidr('0.0.0.0/0')!]), true);
});

test('parseIsoDuration: quoted or bare, any case, fractions; malformed or empty is null', () => {
  const cases: Array<[string, number]> = [
    ['PT30S', 30e3],
    ['"pt5m"', 300e3],
    ['PT1H30M', 5400e3],
    ['P1D', 86400e3],
    ['P1W', 7 * 86400e3],
    ['P1DT12H', 36 * 3600e3],
    ['PT0.5S', 500],
    ['P1M', 30 * 86400e3],
    ['P1Y', 365 * 86400e3],
    [' "P2D" ', 2 * 86400e3],
  ];
  for (const [text, ms] of cases) assert.equal(parseIsoDuration(text), ms, text);
  for (const bad of ['', 'P', 'PT', 'P1DT', '30M', 'PT5X', 'P1H', 'PT-5M', '"PT5M', 'P 1D']) assert.equal(parseIsoDuration(bad), null, bad);
});

// ---------------------------------------------------------------- load.ts: across files

const IMTA = lines(
  '.   $U%$H@tcp-daemon',
  '',
  'l pool LOCAL_POOL', // 3
  'localhost',
  '',
  'tcp_local smtp pool Nowhere', // 6
  'tcp-daemon',
);

test('load: a service running as an undefined channel and a channel naming an unknown pool are errors at their lines', () => {
  const inst = instance({
    'etc/imta.cnf': IMTA,
    'etc/dispatcher.cnf': lines('[SERVICE=SMTP]', 'PORT=2525', '', '[SERVICE=SUBMIT]', 'PORT=2587', 'PARAMETER=CHANNEL=tcp_submit'),
    'etc/job_controller.cnf': lines('[POOL=DEFAULT]', '[POOL=local_pool]'),
  });
  const { config, diagnostics } = loadInstanceConfig(inst.root);
  assert.equal(config, null);
  assert.deepEqual(whereOf(inst.root, diagnostics), ['etc/dispatcher.cnf:4: error', 'etc/imta.cnf:6: error']);
  assert.match(diagnostics[0]!.message, /\[SERVICE=SUBMIT\] runs as channel tcp_submit, which imta\.cnf does not define/);
  assert.match(diagnostics[1]!.message, /channel tcp_local names pool Nowhere, which job_controller\.cnf does not define \(pools: DEFAULT, LOCAL_POOL\)/);
  assert.throws(() => loadInstanceConfigOrThrow(inst.root), (err: Error) => {
    const got = err.message.split('\n');
    assert.equal(got.length, 2);
    assert.match(got[0]!, new RegExp(`^${inst.root}/etc/dispatcher\\.cnf:4: error: \\[SERVICE=SUBMIT\\]`));
    assert.match(got[1]!, new RegExp(`^${inst.root}/etc/imta\\.cnf:6: error: channel tcp_local`));
    return true;
  });
});

test('load: LOCAL_HOST joins channel l\'s hosts; RETURN_UNITS=1 makes notices hours; missing optional files give defaults', () => {
  const inst = instance({
    'etc/imta.cnf': lines('.   $U%$H@tcp-daemon', '', 'l notices 2 4', 'localhost', '', 'tcp_local smtp', 'tcp-daemon'),
    'etc/option.dat': lines('LOCAL_HOST=Mail.Example.ORG', 'RETURN_UNITS=1'),
  });
  const { config, diagnostics } = loadInstanceConfig(inst.root);
  assert.deepEqual(diagnostics, []);
  assert.ok(config);
  assert.deepEqual(config.imta.channelByName.get('l')!.hosts, ['localhost', 'mail.example.org']);
  assert.equal(config.imta.hostTable.get('mail.example.org'), 'l');
  assert.deepEqual(config.imta.channelByName.get('tcp_local')!.noticesMs, [2 * 3600e3, 4 * 3600e3]);
  assert.deepEqual(config.dispatcher.services, []);
  assert.deepEqual(config.jobController.pools, [{ name: 'DEFAULT', jobLimit: 10 }]);
  assert.equal(config.aliases.size, 0);
  assert.equal(loadInstanceConfigOrThrow(inst.root).options.localHost, 'mail.example.org');
});

test('load: a LOCAL_HOST already routed elsewhere stays there; warnings alone leave a usable configuration', () => {
  const inst = instance({
    'etc/imta.cnf': lines('.   $U%$H@tcp-daemon', '', 'l frobnicate', 'localhost', '', 'tcp_local smtp', 'tcp-daemon', 'mx.example.net'),
    'etc/option.dat': lines('LOCAL_HOST=mx.example.net'),
    'etc/aliases': lines('abuse: postmaster'),
  });
  const { config, diagnostics } = loadInstanceConfig(inst.root);
  assert.deepEqual(whereOf(inst.root, diagnostics), ['etc/imta.cnf:3: warning']);
  assert.ok(config);
  assert.deepEqual(config.diagnostics, diagnostics);
  assert.equal(config.imta.hostTable.get('mx.example.net'), 'tcp_local');
  assert.deepEqual(config.imta.channelByName.get('l')!.hosts, ['localhost']);
  assert.deepEqual(config.aliases.get('abuse'), ['postmaster']);
});

test('load: the shipped etc/ loads without a diagnostic', () => {
  const inst = makeInstance({ shipped: true });
  instances.push(inst);
  const { config, diagnostics } = loadInstanceConfig(inst.root);
  assert.deepEqual(diagnostics, []);
  assert.ok(config);
  assert.deepEqual(config.dispatcher.services.map((s) => [s.name, s.ports, s.channel]), [['SMTP', [25], 'tcp_local']]);
  // The submission services are shipped, off without a certificate.
  assert.deepEqual(config.dispatcher.off?.map((o) => [o.service, o.ports]), [['SUBMISSION', [587]], ['SUBMISSIONS', [465]]]);
  assert.deepEqual(config.jobController.pools.map((p) => p.name), ['DEFAULT', 'LOCAL_POOL', 'SMTP_POOL']);
  assert.deepEqual(config.imta.channels.map((c) => c.name), ['l', 'tcp_local', 'tcp_intranet', 'tcp_submit', 'tcp_auth', 'bitbucket', 'hold', 'bounces', 'reprocess']);
});

test('the examples of docs/CONFIGURATION.md load together without a diagnostic', () => {
  const doc = readFileSync(join(repoRoot, 'docs/CONFIGURATION.md'), 'utf8');
  const files: Record<string, string> = {};
  for (const m of doc.matchAll(/<!-- example: (\S+) -->\n```[^\n]*\n([\s\S]*?)```\n/g)) files[m[1]!] = m[2]!;
  assert.deepEqual(Object.keys(files).sort(), ['etc/aliases', 'etc/dispatcher.cnf', 'etc/imta.cnf', 'etc/job_controller.cnf', 'etc/mappings', 'etc/option.dat', 'etc/shaping.cnf', 'etc/users']);
  const inst = instance(files);
  chmodSync(join(inst.root, 'etc/users'), 0o600); // as the example's comment says
  const { config, diagnostics } = loadInstanceConfig(inst.root);
  assert.deepEqual(diagnostics, []);
  assert.ok(config);
  assert.deepEqual(config.dispatcher.services.map((s) => [s.name, s.ports, s.channel]), [['SMTP', [25], 'tcp_local'], ['SMTP_SUBMIT', [587], 'tcp_intranet']]);
  assert.equal(config.imta.channelByName.get('tcp_local')!.officialHost, 'mail.example.com');
  assert.deepEqual(config.aliases.get('team'), ['alice', 'bob', 'carol']);
  assert.deepEqual(config.shaping?.sections.map((x) => [x.name, x.scope, x.limits.maxConnections]), [['gmail', 'group', 20], ['outlook', 'group', 10], ['yahoo', 'host', 4], ['partner', 'group', 10]]);
  assert.deepEqual(config.shaping?.sections[3]!.domainSuffixes, ['partner.example']);
  assert.deepEqual([...config.mappings.tables.keys()], ['PORT_ACCESS', 'INTERNAL_IP', 'FROM_ACCESS', 'ORIG_SEND_ACCESS']);
  // What the example's comment says it does.
  const mappings = compileMappings(config.mappings);
  const connect = (clientIp: string) => checkPortAccess(mappings, { serverIp: '198.51.100.1', serverPort: 25, clientIp, clientPort: 4000 });
  assert.equal(connect('192.0.2.9').reply, '421 4.7.0 Come back later');
  assert.deepEqual([connect('10.1.1.1').verdict, connect('10.1.1.1').output], ['accept', '']);
  assert.deepEqual([connect('203.0.113.1').verdict, connect('203.0.113.1').output], ['accept', 'EXTERNAL']);
  const relay = checkAccess(mappings, 'ORIG_SEND_ACCESS', 'tcp_local|a@example.net|tcp_local|b@example.org', { address: 'b@example.org' });
  assert.deepEqual([relay.reply, relay.delaySeconds], ['550 5.7.1 Relaying not allowed: b@example.org', 1]);
  assert.deepEqual([...config.users.users.values()].map((u) => [u.name, u.addresses, u.admin, u.hash === null]), [
    ['alice', ['alice.smith@example.com', 'sales@example.com'], false, false],
    ['root', [], true, false],
    ['bob', [], false, true],
  ]);
});

test('localHostProblem: a fully qualified name is fine; a short one, set or the machine\'s, is a problem', async () => {
  const { localHostProblem } = await import('../../src/config/option-dat.js');
  assert.equal(localHostProblem('mail.example.com', 'vm'), null);
  assert.equal(localHostProblem(undefined, 'mx1.example.org'), null);
  assert.match(localHostProblem(undefined, 'vm')!, /^LOCAL_HOST is not set, and this machine's name "vm" is not a fully qualified domain name/);
  assert.match(localHostProblem('mailhost', 'mx1.example.org')!, /^LOCAL_HOST "mailhost" is not a fully qualified domain name/);
  assert.match(localHostProblem(undefined, 'localhost.localdomain')!, /"localhost\.localdomain"/);
});

test('MAX_RECEIVED_LINES: the Received: line limit of looping mail, 50 by default; not a positive whole number is an error at its line', () => {
  assert.equal(parseOptionDat(null, []).maxReceivedLines, 50);
  assert.equal(options(lines('MAX_RECEIVED_LINES=30')).config.maxReceivedLines, 30);
  const bad = options(lines('!', 'MAX_RECEIVED_LINES=0'));
  assert.deepEqual(bad.where, ['etc/option.dat:2: error']);
  assert.equal(bad.config.maxReceivedLines, 50);
});
