// SMTP AUTH on the client side (issue 15, item 6): a daemon channel with mustsaslclient or
// maysaslclient and credentials from etc/client_auth delivers through the SMTP channel job to a
// smart host that wants a password: a tsubame SMTP service in this process offering AUTH after
// STARTTLS (maysaslserver) and relaying only for authenticated clients. The credentials go only
// inside TLS, never into the master_debug transcript; a refusal, or no TLS under mustsaslclient,
// defers the mail with a status saying why (what the queue shows as its last error).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createSmtpJobWith } from '../../src/channels/smtp.js';
import { DnsCache } from '../../src/dns/cache.js';
import { ReachabilityCache } from '../../src/delivery/reachability.js';
import type { Channel, ChannelSasl } from '../../src/config/types.js';
import { waitFor } from '../helpers/instance.js';
import { makeChannel, makeConfig, Spool } from './delivery-fixtures.js';
import { SERVER_IP, type SmtpFixture } from './smtp-harness.js';
import { makeCertificate, startAuthFixture, type Certificate } from './smtp-auth-fixture.js';

let cert: Certificate;
let smartHost: SmtpFixture;
const spool = new Spool();

before(async () => {
  cert = makeCertificate();
  // SASL_FAILURE_DELAY=0: the refused case need not wait for the brute-force pause.
  smartHost = await startAuthFixture({ cert, options: 'SASL_FAILURE_DELAY=0\n' });
});
after(async () => {
  await smartHost?.stop();
  cert?.remove();
  spool.remove();
});

function sasl(client: ChannelSasl['client']): ChannelSasl {
  return { server: 'none', client, switchChannel: null, cleartext: false, senderLoginMatch: true, badAuthLimit: 3 };
}

/** A job of a daemon channel to the smart host, with `password` for alice in etc/client_auth. */
function job(overrides: Partial<Channel>, password: string) {
  const channel = makeChannel({ daemon: [SERVER_IP], port: smartHost.port, tlsClient: 'maytls', masterDebug: true, ...overrides });
  const config = { ...makeConfig(spool.root, { channels: [channel] }), clientAuth: { file: 'etc/client_auth', byChannel: new Map([['tcp_local', { username: 'alice', password, file: 'etc/client_auth', line: 1 }]]) } };
  return createSmtpJobWith(spool.context(config, channel), { dnsCache: new DnsCache(), reachability: new ReachabilityCache() });
}

test('mustsaslclient over STARTTLS: delivered through the smart host as alice, who may relay; the transcript has no password', async () => {
  const j = job({ sasl: sasl('must') }, 'alice-pw');
  try {
    const [o] = await j.deliver([spool.message('alice@local.test', ['far@remote.example'])]);
    assert.equal(o!.recipients[0]!.result, 'delivered', o!.recipients[0]!.status ?? '');
    const e = await waitFor(() => smartHost.mailLog().find((r) => r.event === 'E' && r.recipient === 'far@remote.example'), { what: 'the smart host queued it' });
    assert.equal(e.user, 'alice');
    assert.equal(e.source, 'tcp_auth');
    const transcript = readFileSync(j.transcriptPath!, 'utf8');
    assert.match(transcript, /AUTH PLAIN/);
    assert.doesNotMatch(transcript, /alice-pw/);
    assert.ok(!transcript.includes(Buffer.from('\0alice\0alice-pw').toString('base64')), 'no base64 of the credentials');
  } finally {
    await j.close();
  }
});

test('the smart host refuses the credentials: deferred, the status says who refused what and why (maysaslclient alike)', async () => {
  for (const mode of ['must', 'may'] as const) {
    const j = job({ sasl: sasl(mode) }, 'wrong-password');
    try {
      const [o] = await j.deliver([spool.message('alice@local.test', [`refused-${mode}@remote.example`])]);
      const r = o!.recipients[0]!;
      assert.equal(r.result, 'deferred', mode);
      assert.match(r.status ?? '', new RegExp(`^451 4\\.7\\.0 .*${SERVER_IP}.* refused SMTP AUTH PLAIN as alice \\(etc/client_auth\\): 535 5\\.7\\.8 `), r.status ?? '');
      assert.doesNotMatch(r.status ?? '', /wrong-password/);
    } finally {
      await j.close();
    }
  }
  assert.equal(smartHost.mailLog().filter((r) => r.event === 'E' && r.recipient.startsWith('refused-')).length, 0);
});

test('mustsaslclient without TLS (notls): nothing sent in clear, deferred saying so; maysaslclient goes on without AUTH (and the smart host refuses to relay)', async () => {
  const must = job({ sasl: sasl('must'), tlsClient: 'notls' }, 'alice-pw');
  try {
    const [o] = await must.deliver([spool.message('alice@local.test', ['clear@remote.example'])]);
    assert.equal(o!.recipients[0]!.result, 'deferred');
    assert.match(o!.recipients[0]!.status ?? '', /^451 4\.7\.0 mustsaslclient: .* only over TLS/);
    assert.doesNotMatch(readFileSync(must.transcriptPath!, 'utf8'), /AUTH /, 'no AUTH command in clear');
  } finally {
    await must.close();
  }
  const may = job({ sasl: sasl('may'), tlsClient: 'notls' }, 'alice-pw');
  try {
    const [o] = await may.deliver([spool.message('alice@local.test', ['clear-may@remote.example'])]);
    assert.equal(o!.recipients[0]!.result, 'failed');
    assert.match(o!.recipients[0]!.status ?? '', /^550 5\.7\.1 /);
  } finally {
    await may.close();
  }
});
