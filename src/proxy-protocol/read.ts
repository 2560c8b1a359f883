// Reads the PROXY protocol header off a freshly accepted socket, before the SMTP server (or the
// TLS handshake of an implicit-TLS port) takes it. It reads what has arrived, asks the parser,
// and as soon as the header is whole puts the octets that came after it back at the front of the
// socket (unshift), so the session reads them as if nothing had been taken: the client's first
// command, or its TLS ClientHello (Node's TLSSocket reads a wrapped socket's buffered octets
// first). Nothing is written to the peer, and the socket is not closed: on failure the caller
// decides (tsubame closes without a greeting, as Postfix's smtpd does). The whole header must
// arrive within `timeoutMs` however it is split, so a peer sending an octet a minute is cut off.
import type net from 'node:net';
import { DEFAULT_MAX_HEADER_BYTES, parseProxyHeader, printableBytes, type ProxyHeader, type ProxyVersions } from './parse.js';

export interface ReadProxyHeaderOptions {
  /** The whole header must be in within this (Postfix's smtpd_upstream_proxy_timeout; tsubame's PROXY_TIMEOUT). */
  timeoutMs: number;
  /** The longest version 2 header taken (default 1024 octets). */
  maxBytes?: number;
  /** Default 'any'. */
  versions?: ProxyVersions;
}

export interface ProxyHeaderRead {
  header: ProxyHeader;
  /** The octets received after the header: already put back into the socket, given for the log and tests. */
  rest: Buffer;
}

export type ProxyReadFailure = 'malformed' | 'timeout' | 'closed';

export class ProxyHeaderError extends Error {
  constructor(
    readonly failure: ProxyReadFailure,
    readonly reason: string,
    /** What had arrived, log-safe (printable ASCII, \xNN), at most 120 octets shown. */
    readonly received: string,
  ) {
    super(reason);
    this.name = 'ProxyHeaderError';
  }
}

export function readProxyHeader(socket: net.Socket, options: ReadProxyHeaderOptions): Promise<ProxyHeaderRead> {
  const parseOptions = { versions: options.versions ?? 'any', maxBytes: options.maxBytes ?? DEFAULT_MAX_HEADER_BYTES };
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('error', onError);
      outcome();
    };
    const fail = (failure: ProxyReadFailure, reason: string) => {
      // The caller closes the socket; until then a late error must not be thrown at nobody.
      socket.on('error', () => {});
      finish(() => reject(new ProxyHeaderError(failure, reason, printableBytes(received))));
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!settled && (chunk = socket.read() as Buffer | null) !== null) {
        received = received.length ? Buffer.concat([received, chunk]) : chunk;
        const result = parseProxyHeader(received, parseOptions);
        if (result.kind === 'need-more') continue;
        if (result.kind === 'error') return fail('malformed', result.reason);
        const { header, rest } = result;
        finish(() => {
          if (rest.length) socket.unshift(rest);
          resolve({ header, rest });
        });
      }
    };
    const onEnd = () => fail('closed', received.length ? 'the connection closed in the middle of the PROXY header' : 'the connection closed before a PROXY header');
    const onError = (err: Error) => fail('closed', `socket error before the PROXY header was whole: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
    const timer = setTimeout(() => fail('timeout', `no complete PROXY header within ${options.timeoutMs} ms`), options.timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}
