// The HTTP endpoint on 127.0.0.1:METRICS_PORT: GET /metrics (Prometheus text format 0.0.4),
// GET / (the status page) and GET /queue?event=&destination=&reason= (the queue entries of one
// group of deferrals or returns). Read-only: any other method gets 405, any other path 404. Each
// request gathers a fresh snapshot; requests that arrive while one is being gathered share it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../common/logger.js';
import { EXPOSITION_CONTENT_TYPE, formatExposition } from './exposition.js';
import { metricFamilies } from './metrics-text.js';
import { renderGroupPage, renderStatusPage, type GroupPage } from './status-page.js';
import type { OutcomeGroup } from './history.js';
import type { InstanceSnapshot } from './snapshot.js';

/** Only loopback: the endpoint has no authentication. */
export const METRICS_HOST = '127.0.0.1';

/** Deferrals the status page lists. */
const RECENT_DEFERRALS = 20;

export interface MetricsServerOptions {
  port: number;
  host?: string;
  /** One snapshot; `deferrals` records of mail.log wanted (0 for /metrics). */
  gather(deferrals: number): Promise<InstanceSnapshot>;
  /** The page of one group of deferrals or returns (absent: 404). */
  groupPage?: (group: Pick<OutcomeGroup, 'event' | 'destination' | 'reason'>) => Promise<GroupPage>;
  logger: Logger;
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts listening; rejects with the operator's line when the port cannot be bound. */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const host = opts.host ?? METRICS_HOST;
  const shared = new Map<number, Promise<InstanceSnapshot>>();
  const snapshot = (deferrals: number) => {
    let p = shared.get(deferrals);
    if (!p) {
      p = opts.gather(deferrals).finally(() => shared.delete(deferrals));
      shared.set(deferrals, p);
    }
    return p;
  };

  const server = http.createServer((req, res) => {
    void respond(req, res, snapshot, opts.groupPage).catch((err: Error) => {
      opts.logger.error({ err: err.message, url: req.url }, 'metrics request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `cannot gather the status: ${err.message}\n`);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(listenProblem(err, host, opts.port))));
    server.listen({ port: opts.port, host, exclusive: true }, () => resolve());
  });
  server.on('error', (err) => opts.logger.error({ err: err.message }, 'metrics server error'));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function respond(req: http.IncomingMessage, res: http.ServerResponse, snapshot: (deferrals: number) => Promise<InstanceSnapshot>, groupPage: MetricsServerOptions['groupPage']): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  if (path !== '/' && path !== '/metrics' && !(path === '/queue' && groupPage)) return send(res, 404, 'text/plain; charset=utf-8', 'not found: try / or /metrics\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'read-only: GET or HEAD\n');
  }
  if (path === '/metrics') {
    const body = formatExposition(metricFamilies(await snapshot(0)));
    return send(res, 200, EXPOSITION_CONTENT_TYPE, body, req.method === 'HEAD');
  }
  // No script may run on the pages, whatever a mail address contains.
  res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
  if (path === '/queue') {
    const event = url.searchParams.get('event');
    const destination = url.searchParams.get('destination');
    const reason = url.searchParams.get('reason');
    if ((event !== 'Q' && event !== 'R') || destination === null || reason === null) return send(res, 400, 'text/plain; charset=utf-8', 'give event (Q or R), destination and reason\n');
    return send(res, 200, 'text/html; charset=utf-8', renderGroupPage(await groupPage!({ event, destination, reason })), req.method === 'HEAD');
  }
  const page = renderStatusPage(await snapshot(RECENT_DEFERRALS));
  return send(res, 200, 'text/html; charset=utf-8', page, req.method === 'HEAD');
}

function send(res: http.ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(headOnly ? undefined : body);
}

function listenProblem(err: NodeJS.ErrnoException, host: string, port: number): string {
  const where = `${host}:${port}`;
  if (err.code === 'EADDRINUSE') return `METRICS_PORT ${port}: ${where} is already in use`;
  if (err.code === 'EACCES') return `METRICS_PORT ${port}: no permission to listen on ${where}`;
  return `METRICS_PORT ${port}: cannot listen on ${where}: ${err.message}`;
}
