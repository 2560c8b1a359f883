// Shared pieces of the SMTP AUTH tests: an in-process SMTP service whose tcp_local offers AUTH
// after STARTTLS (maysaslserver, saslswitchchannel tcp_auth), a TLS_PORT beside it, users in
// etc/users with cheap hashes, a certificate made by openssl, and an AUTH client on the raw probe.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../../src/directory/password-hash.js';
import { SERVER_IP, SmtpFixture, SmtpProbe, type Reply } from './smtp-harness.js';

/** Cheap enough for many attempts, costly enough that skipping it would show in the timing test. */
const TEST_SCRYPT = { ln: 12, r: 8, p: 1 };

const AUTH_IMTA = `! rewrite rules
localhost            $U%localhost@localhost
local.test           $U%$D@localhost
.                    $U%$H@tcp-daemon
[]                   $U%[$L]@tcp-daemon

l
localhost
local.test

tcp_local smtp mx maytlsserver maysaslserver saslswitchchannel tcp_auth LOCALKEYWORDS
tcp-daemon

tcp_intranet smtp mx
tcp_intranet-daemon

tcp_auth smtp mx maytlsserver mustsaslserver KEYWORDS
tcp_auth-daemon
`;

export interface Certificate {
  dir: string;
  key: string;
  cert: string;
  remove(): void;
}

export function makeCertificate(name = 'mx.tsubame.test'): Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'tsubame-auth-cert-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-days', '2', '-keyout', key, '-out', cert], {
    stdio: 'ignore',
    timeout: 20_000,
  });
  return { dir, key, cert, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** etc/users: alice (may also send as alias@other.test), bob, carol, and root (admin). */
export async function usersFile(): Promise<string> {
  const h = (pw: string) => hashPassword(pw, TEST_SCRYPT);
  return [
    '! test users',
    `alice:${await h('alice-pw')}:alias@other.test`,
    `bob:${await h('bob-pw')}`,
    `carol:${await h('carol-pw')}`,
    `root:${await h('root-pw')}::admin`,
    '',
  ].join('\n');
}

export interface AuthFixtureOptions {
  cert: Certificate;
  /** option.dat lines besides the certificate. */
  options?: string;
  /** Keywords added to tcp_auth. */
  authKeywords?: string;
  /** Keywords added to tcp_local (the service's channel). */
  localKeywords?: string;
  /** imta.cnf instead of AUTH_IMTA. */
  imta?: string;
  /** Extra lines of the [SERVICE=SMTP] section. */
  service?: string;
}

export async function startAuthFixture(opts: AuthFixtureOptions): Promise<SmtpFixture> {
  return SmtpFixture.start({
    imta: (opts.imta ?? AUTH_IMTA).replace('LOCALKEYWORDS', opts.localKeywords ?? '').replace('KEYWORDS', opts.authKeywords ?? ''),
    options: `TLS_KEY=${opts.cert.key}\nTLS_CERT=${opts.cert.cert}\n${opts.options ?? ''}`,
    mailboxes: ['alice', 'bob', 'joe'],
    files: { 'etc/users': await usersFile() },
    service: opts.service,
    tlsPort: true,
  });
}

/** A session from `ip` after EHLO over TLS: STARTTLS on the port, or TLS at connect on the TLS_PORT. */
export async function tlsSession(fx: SmtpFixture, ip: string, how: 'starttls' | 'implicit' = 'starttls'): Promise<{ probe: SmtpProbe; ehlo: Reply }> {
  if (how === 'implicit') {
    const probe = await SmtpProbe.connectTls(SERVER_IP, fx.tlsPort!, ip);
    return { probe, ehlo: await probe.hello() };
  }
  const plain = await fx.probe(ip);
  await plain.hello();
  const ready = await plain.command('STARTTLS');
  if (ready?.code !== 220) {
    plain.close();
    throw new Error(`STARTTLS: ${ready?.text}`);
  }
  const probe = await plain.startTls();
  const ehlo = await probe.command('EHLO client.test');
  if (ehlo?.code !== 250) throw new Error(`EHLO: ${ehlo?.text}`);
  return { probe, ehlo };
}

export function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** AUTH PLAIN with an initial response; the final reply. */
export function authPlain(probe: SmtpProbe, login: string, password: string, authzid = ''): Promise<Reply | null> {
  return probe.command(`AUTH PLAIN ${b64(`${authzid}\0${login}\0${password}`)}`);
}

/** AUTH LOGIN, challenge by challenge; the final reply (or the first that is not 334). */
export async function authLogin(probe: SmtpProbe, login: string, password: string): Promise<Reply | null> {
  const first = await probe.command('AUTH LOGIN');
  if (first?.code !== 334) return first;
  const second = await probe.command(b64(login));
  if (second?.code !== 334) return second;
  return probe.command(b64(password));
}
