// Every STARTTLS session gives its connection slot back (issue 13, item 1): smtp-server's
// upgrade() removes every listener of the plaintext socket, and the slot used to be given back by
// one of them, so each session that did STARTTLS stayed counted for ever. A running instance
// with maytlsserver, one server process of few connections and a small MAX_CONNS_PER_IP gets
// hundreds of TLS sessions of every ending (closed after the handshake, a whole message and
// QUIT, garbage instead of a handshake, a TLS 1.0 client the server refuses); afterwards every
// count is zero (`imsimta process` CONNS, tsubame_connections_open) and one address can again
// open MAX_CONNS_PER_IP sessions at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from '../helpers/instance.js';
import { MtaInstance, type ProcessRow } from '../helpers/running-instance.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { SmtpProbe } from './smtp-harness.js';

const ADDRESS = '127.0.23.2';
/** Each client address runs its sessions one after another. */
const CLIENTS = ['127.0.23.10', '127.0.23.11', '127.0.23.12'];
const PER_IP = 3;
const MAX_CONNS = 6;
/** Sessions of each kind, over all clients. */
const EACH = 60;

let mta: MtaInstance;
let metricsPort: number;

before(async () => {
  metricsPort = await freePort('127.0.0.1');
  mta = await MtaInstance.create({ address: ADDRESS, service: `MIN_PROCS=1\nMAX_PROCS=1\nMIN_CONNS=${MAX_CONNS}\nMAX_CONNS=${MAX_CONNS}` });
  const certDir = join(mta.root, 'tls');
  mkdirSync(certDir);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=mx.slots.test', '-days', '1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], {
    stdio: 'ignore',
    timeout: 20_000,
  });
  mta.inst.write(
    'etc/imta.cnf',
    `! TLS slot test instance
localhost            $U%localhost@localhost
.                    $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx maytlsserver
tcp-daemon
`,
  );
  mta.inst.write(
    'etc/option.dat',
    `INTERNAL_IP=127.0.0.0/8\nLOCAL_HOST=mx.slots.test\nMAX_CONNS_PER_IP=${PER_IP}\nMETRICS_PORT=${metricsPort}\nBANNER_PURGE_DELAY=0\nTLS_KEY=${join(certDir, 'key.pem')}\nTLS_CERT=${join(certDir, 'cert.pem')}\n`,
  );
  const r = await mta.cli('start-msg', [], 60_000);
  assert.equal(r.code, 0, r.stderr);
  await mta.processes();
});

after(async () => {
  await mta?.cleanup();
});

type Kind = 'handshake-then-close' | 'whole-message' | 'garbage-handshake' | 'tls1.0-refused';
const KINDS: Kind[] = ['handshake-then-close', 'whole-message', 'garbage-handshake', 'tls1.0-refused'];

/** Greeting, EHLO, STARTTLS: the plaintext probe, ready for the handshake. */
async function upToStartTls(client: string): Promise<SmtpProbe> {
  const p = await SmtpProbe.connect(ADDRESS, mta.port, client);
  try {
    await p.hello('client.test');
    const go = await p.command('STARTTLS');
    assert.equal(go?.code, 220, go?.text);
    return p;
  } catch (err) {
    p.close();
    throw err;
  }
}

async function session(kind: Kind, client: string): Promise<void> {
  const p = await upToStartTls(client);
  try {
    switch (kind) {
      case 'handshake-then-close': {
        const s = await p.startTls();
        assert.equal((await s.command('EHLO client.test'))?.code, 250);
        s.close();
        return;
      }
      case 'whole-message': {
        const s = await p.startTls();
        try {
          assert.equal((await s.command('EHLO client.test'))?.code, 250);
          assert.equal((await s.command('MAIL FROM:<tls@client.test>'))?.code, 250);
          assert.equal((await s.command('RCPT TO:<postmaster@localhost>'))?.code, 250);
          assert.equal((await s.command('DATA'))?.code, 354);
          const done = await s.command('Subject: over TLS\r\n\r\nbody\r\n.');
          assert.equal(done?.code, 250, done?.text);
          assert.equal((await s.command('QUIT'))?.code, 221);
          assert.ok(await s.waitClosed(), 'the server closes after QUIT');
        } finally {
          s.close();
        }
        return;
      }
      case 'garbage-handshake':
        p.write('GET / HTTP/1.0\r\nHost: mx.slots.test\r\n\r\n');
        assert.ok(await p.waitClosed(10_000), 'the server closes a connection whose handshake failed');
        return;
      case 'tls1.0-refused':
        await assert.rejects(p.startTls({ minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }), 'a TLS 1.0 client is refused');
        return;
    }
  } finally {
    p.close();
  }
}

const smtpServers = (rows: ProcessRow[]) => rows.filter((r) => r.role === 'smtp_server');

async function openConnectionsMetric(): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  return sampleValue(parsePrometheusText(await res.text()), 'tsubame_connections_open', { service: 'SMTP' });
}

test('hundreds of STARTTLS sessions of every ending give their slots back: counts return to zero, clients are still greeted', async () => {
  const work: Kind[] = KINDS.flatMap((k) => Array.from({ length: EACH }, () => k));
  // Dealt round the clients, so each address sees every kind many times over.
  await Promise.all(
    CLIENTS.map(async (client, c) => {
      for (let i = c; i < work.length; i += CLIENTS.length) {
        try {
          await session(work[i]!, client);
        } catch (err) {
          throw new Error(`session ${i} (${work[i]}) from ${client}: ${(err as Error).message}`, { cause: err });
        }
      }
    }),
  );

  let last: ProcessRow[] = [];
  await waitFor(
    async () => {
      last = await mta.processes();
      const servers = smtpServers(last);
      return servers.length > 0 && servers.every((r) => r.connections === 0);
    },
    { timeoutMs: 15_000, what: 'every SMTP server process at 0 connections' },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last seen ${JSON.stringify(smtpServers(last))}`);
  });
  await waitFor(async () => (await openConnectionsMetric()) === 0, { timeoutMs: 10_000, what: 'tsubame_connections_open 0' });

  // One address may open MAX_CONNS_PER_IP sessions at once again, and each is greeted.
  const held = await Promise.all(Array.from({ length: PER_IP }, () => SmtpProbe.connect(ADDRESS, mta.port, CLIENTS[0]!)));
  try {
    for (const p of held) assert.equal((await p.reply(10_000))?.code, 220);
  } finally {
    for (const p of held) p.close();
  }
});

test('each TLS session is logged as Postfix does: "TLS connection established from [ip]: TLSv1.3 with cipher …"', async () => {
  const log = readFileSync(join(mta.root, 'log', 'tcp_smtp_server.log'), 'utf8');
  const established = log.split('\n').filter((l) => l.includes('TLS connection established'));
  // every handshake that completed: the sessions closed after it and the whole messages (the others never completed one)
  assert.ok(established.length >= 2 * EACH, `${established.length} lines`);
  const entry = JSON.parse(established[0]!) as { msg: string; client: string; tlsVersion: string; cipher: string };
  assert.match(entry.msg, /^TLS connection established from \[127\.0\.23\.1[0-2]\]: TLSv1\.[23] with cipher \S+$/);
  assert.ok(CLIENTS.includes(entry.client));
  assert.match(entry.tlsVersion, /^TLSv1\.[23]$/);
});
