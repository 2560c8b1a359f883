// A local HTTPS server for MTA-STS tests: serves `/.well-known/mta-sts.txt` of policy hosts
// (mta-sts.DOMAIN) from a table the test may change, with a certificate from the test CA for
// those names (or, for the names in `strangers`, one for another name), on loopback. Every
// request is logged as `host/path`. Special answers (a redirect, another content type) through
// `respond`, which is asked first.
//
//   const sts = await startMtaStsServer({ host: '127.17.2.80', ca, policies: { 'mta-sts.a.test': 'version: STSv1\n…' } });
//   … stsPort: sts.port …
//   await sts.close();
import https from 'node:https';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { TestCa } from './test-ca.js';

export interface MtaStsServer {
  host: string;
  port: number;
  /** Policy host → policy text (mutable). */
  policies: Record<string, string>;
  /** `mta-sts.a.test/.well-known/mta-sts.txt`, one per request, in order. */
  requests: string[];
  close(): Promise<void>;
}

export interface MtaStsServerOptions {
  host: string;
  ca: TestCa;
  /** Policy host (`mta-sts.DOMAIN`) → policy text; the certificate covers these names and `names`. */
  policies: Record<string, string>;
  /** More names the certificate covers (hosts answered only through `respond`). */
  names?: string[];
  /** Policy hosts that get a certificate for another name. */
  strangers?: string[];
  /** A special answer for a host and path; return true when it answered. */
  respond?: (host: string, url: string, res: ServerResponse) => boolean;
}

export async function startMtaStsServer(opts: MtaStsServerOptions): Promise<MtaStsServer> {
  const policies = { ...opts.policies };
  const requests: string[] = [];
  const names = [...new Set([...Object.keys(opts.policies), ...(opts.names ?? [])])];
  const own = opts.ca.issue(names.length ? names : ['mta-sts.invalid.test']);
  const stranger = opts.ca.issue(['www.elsewhere.test']);
  const strangers = new Set(opts.strangers ?? []);
  const server = https.createServer(
    {
      key: own.key,
      cert: own.chain,
      SNICallback: (name, cb) => cb(null, createSecureContext(strangers.has(name) ? { key: stranger.key, cert: stranger.chain } : { key: own.key, cert: own.chain })),
    },
    (req, res) => {
      const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
      requests.push(`${host}${req.url}`);
      if (opts.respond?.(host, req.url ?? '', res)) return;
      if (req.url !== '/.well-known/mta-sts.txt') return res.writeHead(404).end();
      const text = policies[host];
      if (!text) return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
    },
  );
  const port = await new Promise<number>((resolve) => server.listen(0, opts.host, () => resolve((server.address() as AddressInfo).port)));
  return {
    host: opts.host,
    port,
    policies,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
