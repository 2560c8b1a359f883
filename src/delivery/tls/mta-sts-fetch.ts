// The MTA-STS policy fetch (RFC 8461 §3.3): `GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
// from an address our DNS client found, with the certificate checked for mta-sts.DOMAIN against
// the trust store (Node's CAs plus TLS_CA_FILE), no redirects followed, no HTTP cache, a
// text/plain body of at most 64 KiB, all within one deadline.
import https from 'node:https';
import type { TrustStore } from './trust.js';

export interface StsFetchOptions {
  /** The policy host's addresses (A, then AAAA), in order of preference. */
  addresses: string[];
  trust: TrustStore;
  /** The whole fetch: connect, handshake, reply, body (MTA_STS_TIMEOUT). */
  timeoutMs: number;
  /** 443 but in tests. */
  port?: number;
  /** Largest body in octets (RFC 8461 §3.3 suggests 64 KiB). */
  maxBytes?: number;
}

export type StsFetchResult = { ok: true; text: string } | { ok: false; reason: string; /** TLS-RPT result type. */ kind: 'sts-policy-fetch-error' | 'sts-webpki-invalid' };

const STS_POLICY_PATH = '/.well-known/mta-sts.txt';
const MAX_BYTES = 65536;

/** Tries the addresses in turn until one answers (a certificate problem is not retried elsewhere). */
export async function fetchStsPolicy(domain: string, opts: StsFetchOptions): Promise<StsFetchResult> {
  const host = `mta-sts.${domain}`;
  if (opts.addresses.length === 0) return { ok: false, reason: `${host} has no address`, kind: 'sts-policy-fetch-error' };
  let last: StsFetchResult = { ok: false, reason: 'not tried', kind: 'sts-policy-fetch-error' };
  const deadline = Date.now() + opts.timeoutMs;
  for (const address of opts.addresses) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    last = await fetchFrom(host, address, { ...opts, timeoutMs: left });
    if (last.ok || last.kind === 'sts-webpki-invalid') return last;
  }
  return last;
}

function fetchFrom(host: string, address: string, opts: StsFetchOptions): Promise<StsFetchResult> {
  const maxBytes = opts.maxBytes ?? MAX_BYTES;
  const where = `https://${host}${STS_POLICY_PATH}`;
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: StsFetchResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = https.request({
      host: address,
      port: opts.port ?? 443,
      path: STS_POLICY_PATH,
      method: 'GET',
      servername: host,
      headers: { host, 'user-agent': 'tsubame MTA-STS', 'cache-control': 'no-cache', accept: 'text/plain' },
      ca: opts.trust.ca,
      rejectUnauthorized: true,
      agent: false,
    });
    const timer = setTimeout(() => done({ ok: false, reason: `${where}: no answer within ${Math.round(opts.timeoutMs / 100) / 10} s`, kind: 'sts-policy-fetch-error' }), opts.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      const tlsProblem = /CERT|SELF_SIGNED|UNABLE_TO|ALTNAME|certificate/i.test(`${err.code ?? ''} ${err.message}`);
      done({ ok: false, reason: `${where} [${address}]: ${err.code ?? ''}${err.code ? ' ' : ''}${err.message}`.trim(), kind: tlsProblem ? 'sts-webpki-invalid' : 'sts-policy-fetch-error' });
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      // RFC 8461 §3.3: only 200 counts; a redirect is not followed.
      if (status !== 200) return done({ ok: false, reason: `${where}: HTTP ${status}${res.headers.location ? ` (redirect to ${res.headers.location}, not followed)` : ''}`, kind: 'sts-policy-fetch-error' });
      const type = String(res.headers['content-type'] ?? '');
      if (!/^text\/plain\s*(;|$)/i.test(type)) return done({ ok: false, reason: `${where}: media type "${type}", not text/plain`, kind: 'sts-policy-fetch-error' });
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return done({ ok: false, reason: `${where}: the policy is larger than ${maxBytes} octets`, kind: 'sts-policy-fetch-error' });
        chunks.push(c);
      });
      res.on('end', () => done({ ok: true, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => done({ ok: false, reason: `${where}: ${err.message}`, kind: 'sts-policy-fetch-error' }));
    });
    req.end();
  });
}
