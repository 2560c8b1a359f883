// Pure decisions of the SMTP server: relay policy per RCPT, address charset, settings from the
// configuration, per-IP counting, local user names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel, InstanceConfig, OptionsConfig } from '../../src/config/types.js';
import { decideRecipient } from '../../src/smtp-server/recipient-policy.js';
import { asciiDomainForm, checkAddressCharset } from '../../src/smtp-server/address-check.js';
import { resolveInboundSettings, bannerHost, SettingsError } from '../../src/smtp-server/settings.js';
import { PerIpGate } from '../../src/smtp-server/client-limits.js';
import { localUserKey } from '../../src/directory/local-part.js';

function channel(name: string, hosts: string[], extra: Partial<Channel> = {}): Channel {
  return {
    name, keywords: {}, officialHost: hosts[0] ?? name, hosts, file: '/etc/imta.cnf', line: 7,
    smtp: name.startsWith('tcp_'), lmtp: false, mx: 'defaultmx', daemon: null, port: null, copies: 'multiple',
    addrsPerFile: null, subdirs: 0, maxJobs: 100, pool: null, threadDepth: 10, filesPerJob: 0, addrsPerJob: 0,
    backoffMs: null, noticesMs: null, immediate: true, tlsClient: 'notls', tlsServer: 'notls', pipelining: true,
    masterDebug: false, slaveDebug: false, senderRewrite: null, rcptPerTransaction: 100, maxClientConnections: 20, dkimSign: false,
    ...extra,
  };
}

const CHANNELS = new Map<string, Channel>(
  [channel('l', ['mail.ex.com']), channel('tcp_local', ['tcp-daemon']), channel('tcp_intranet', ['tcp_intranet-daemon']), channel('bitbucket', ['bitbucket-daemon']), channel('tcp_lmtp', ['lmtp-daemon'], { lmtp: true })].map(
    (c) => [c.name.toLowerCase(), c],
  ),
);

test('external clients may not reach SMTP channels: 550 5.7.1', () => {
  const d = decideRecipient('u@remote.example', { channel: 'tcp_local', rewritten: 'u@remote.example', error: null }, CHANNELS, false);
  assert.equal(d.ok, false);
  if (!d.ok) {
    assert.equal(d.reply.code, 550);
    assert.equal(d.reply.enhanced, '5.7.1');
    assert.match(d.reply.text, /Relaying denied/);
  }
});

test('internal (or authenticated) clients may relay', () => {
  const d = decideRecipient('u@remote.example', { channel: 'tcp_local', rewritten: 'u@remote.example', error: null }, CHANNELS, true);
  assert.deepEqual(d, { ok: true, channel: 'tcp_local', address: 'u@remote.example', localPart: null });
});

test('non-SMTP channels are open to everyone; the local channel asks for its user', () => {
  assert.deepEqual(decideRecipient('x@bb', { channel: 'bitbucket', rewritten: 'x@bb', error: null }, CHANNELS, false), {
    ok: true, channel: 'bitbucket', address: 'x@bb', localPart: null,
  });
  assert.deepEqual(decideRecipient('Joe+tag@ex.com', { channel: 'l', rewritten: 'Joe+tag@mail.ex.com', error: null }, CHANNELS, false), {
    ok: true, channel: 'l', address: 'Joe+tag@mail.ex.com', localPart: 'Joe+tag',
  });
  assert.equal(decideRecipient('a@b', { channel: 'tcp_lmtp', rewritten: 'a@b', error: null }, CHANNELS, false).ok, true);
  const pm = decideRecipient('postmaster', { channel: 'l', rewritten: 'postmaster', error: null }, CHANNELS, false);
  assert.equal(pm.ok && pm.localPart, 'postmaster');
});

test('unroutable addresses: 550 5.1.2 with the rewrite error text', () => {
  const d = decideRecipient('u@nowhere', { channel: null, rewritten: null, error: 'illegal host/domain: nowhere' }, CHANNELS, true);
  assert.equal(d.ok, false);
  if (!d.ok) assert.equal(`${d.reply.code} ${d.reply.enhanced} ${d.reply.text}`, '550 5.1.2 illegal host/domain: nowhere');
  const unknown = decideRecipient('u@x', { channel: 'tcp_gone', rewritten: 'u@x', error: null }, CHANNELS, true);
  assert.equal(!unknown.ok && unknown.reply.enhanced, '5.1.2');
});

test('address charset: UTF-8 local parts need SMTPUTF8; invalid UTF-8 never passes', () => {
  assert.equal(checkAddressCharset('user@example.com', false), null);
  assert.equal(checkAddressCharset('usér@example.com', false)?.code, 553);
  assert.equal(checkAddressCharset('usér@example.com', false)?.enhanced, '5.6.7');
  assert.equal(checkAddressCharset('usér@example.com', true), null);
  assert.equal(checkAddressCharset('u\uFFFD@example.com', true)?.code, 553);
  // smtp-server hands A-label domains over as U-labels: allowed without SMTPUTF8
  assert.equal(checkAddressCharset('user@bücher.example', false), null);
  assert.equal(asciiDomainForm('user@bücher.example'), 'user@xn--bcher-kva.example');
  assert.equal(asciiDomainForm('user@[192.0.2.1]'), 'user@[192.0.2.1]');
  assert.equal(asciiDomainForm('postmaster'), 'postmaster');
});

function options(extra: Partial<OptionsConfig> = {}): OptionsConfig {
  return {
    raw: {}, internalIp: [], dnsServers: [], localHost: 'host.example.org', maxMessageSize: 10240000, maxRecipients: 1000,
    maxMessagesPerSession: 1000, maxBadCommands: 10, maxConnsPerIp: 50, bannerPurgeDelayMs: 100, bannerPurgeDelayInternalMs: 0,
    smtpTimeoutMs: 300000, smtpCommandDeadlineMs: 300000, smtpMinDataRate: 500,
    smtpSoftErrorLimit: 10, smtpHardErrorLimit: 20, smtpErrorSleepMs: 1000, smtpJunkCommandLimit: 100, maxReceivedLines: 50,
    tlsKeyFile: null, tlsCertFile: null, fastFlushDomains: null, etrnAllow: [], etrnChannelAllow: [], etrnRateLimit: 10, metricsPort: null, ...extra,
  };
}

function instance(channels: Channel[], opts: OptionsConfig, serviceChannel = 'tcp_local'): InstanceConfig {
  const channelByName = new Map(channels.map((c) => [c.name.toLowerCase(), c]));
  return {
    root: '/x',
    imta: { rules: [], channels, channelByName, hostTable: new Map() },
    dispatcher: {
      services: [
        {
          name: 'SMTP', ports: [25], interfaceAddress: null, minProcs: 0, maxProcs: 5, minConns: 5, maxConns: 20, maxHandoffs: 5, backlog: 128,
          maxLifeTimeSec: 86400, maxLifeConns: 100, maxIdleTimeSec: 0, maxShutdown: 2, parameters: {}, channel: serviceChannel, lmtp: false,
          acceptMode: 'shared',
          file: '/etc/dispatcher.cnf', line: 3,
        },
      ],
    },
    jobController: { maxMessages: 100000, synchTimeSec: 14400, rebuildParallelChannel: 12, pools: [], channels: [], maxLifeAgeSec: 0, maxLifeConns: 0 },
    options: opts,
    aliases: new Map(),
    mappings: { file: null, tables: new Map() },
    users: { file: null, users: new Map() },
    dkim: { file: null, keys: [] },
    diagnostics: [],
  };
}

test('settings: channel, intranet channel, limits, banner host', () => {
  const s = resolveInboundSettings(instance([...CHANNELS.values()], options()), 'smtp');
  assert.equal(s.channel, 'tcp_local');
  assert.equal(s.intranetChannel, 'tcp_intranet');
  assert.equal(s.hostName, 'host.example.org'); // tcp-daemon is a tag, not a host name
  assert.equal(s.maxRecipients, 1000);
  assert.equal(s.bannerPurgeDelayMs, 100);
  assert.equal(s.tls.mode, 'none');
  assert.equal(s.proxy, null, 'no PROXY_PROTOCOL: connections are the clients\'');
  const behindLb = instance([...CHANNELS.values()], options());
  const proxy = { versions: 'v2' as const, trusted: [], timeoutMs: 5000, maxBytes: 1024 };
  behindLb.dispatcher.services[0]!.proxy = proxy;
  assert.equal(resolveInboundSettings(behindLb, 'SMTP').proxy, proxy);
  const noIntranet = resolveInboundSettings(instance([channel('tcp_local', ['mx.example.net'])], options()), 'SMTP');
  assert.equal(noIntranet.intranetChannel, 'tcp_local');
  assert.equal(noIntranet.hostName, 'mx.example.net');
});

test('settings: STARTTLS needs both a certificate and maytlsserver/musttlsserver', () => {
  const withCert = options({ tlsKeyFile: '/k.pem', tlsCertFile: '/c.pem' });
  assert.equal(resolveInboundSettings(instance([channel('tcp_local', ['t'])], withCert), 'SMTP').tls.mode, 'none');
  assert.equal(resolveInboundSettings(instance([channel('tcp_local', ['t'], { tlsServer: 'maytls' })], withCert), 'SMTP').tls.mode, 'may');
  assert.equal(resolveInboundSettings(instance([channel('tcp_local', ['t'], { tlsServer: 'musttls' })], withCert), 'SMTP').tls.mode, 'must');
  assert.equal(resolveInboundSettings(instance([channel('tcp_local', ['t'], { tlsServer: 'maytls' })], options()), 'SMTP').tls.mode, 'none');
  assert.throws(() => resolveInboundSettings(instance([channel('tcp_local', ['t'], { tlsServer: 'musttls' })], options()), 'SMTP'), /\/etc\/imta\.cnf:7: .*musttlsserver/);
});

test('settings: unknown service or channel is a one-line error with file:line', () => {
  assert.throws(() => resolveInboundSettings(instance([...CHANNELS.values()], options()), 'SUBMIT'), SettingsError);
  assert.throws(() => resolveInboundSettings(instance([...CHANNELS.values()], options(), 'tcp_submit'), 'SMTP'), /\/etc\/dispatcher\.cnf:3: .*tcp_submit/);
  assert.equal(bannerHost(channel('l', ['[127.0.0.1]']), 'h.example'), 'h.example');
});

test('per-IP counter: limit, release, unlimited', () => {
  const c = new PerIpGate(2);
  assert.equal(c.acquire('1.1.1.1'), true);
  assert.equal(c.acquire('1.1.1.1'), true);
  assert.equal(c.acquire('1.1.1.1'), false);
  assert.equal(c.acquire('2.2.2.2'), true);
  c.release('1.1.1.1');
  assert.equal(c.acquire('1.1.1.1'), true);
  assert.equal(c.count('1.1.1.1'), 2);
  const free = new PerIpGate(0);
  for (let i = 0; i < 100; i++) assert.equal(free.acquire('3.3.3.3'), true);
});

test('local user keys: case, subaddress, quotes, no path tricks', () => {
  assert.equal(localUserKey('Joe'), 'joe');
  assert.equal(localUserKey('joe+lists'), 'joe');
  assert.equal(localUserKey('"joe"'), 'joe');
  assert.equal(localUserKey('+tag'), '+tag');
  for (const bad of ['', '..', '.', '../etc', 'a/b', '"a/b"']) assert.equal(localUserKey(bad), null, bad);
});
