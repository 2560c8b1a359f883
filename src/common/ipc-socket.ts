// Newline-delimited JSON over a Unix socket: the one wire format between tsubame's processes
// and its CLI (watcher control socket, job controller socket).
import net from 'node:net';
import { unlinkSync } from 'node:fs';

export type JsonObject = Record<string, unknown>;
export type RequestHandler = (request: JsonObject) => Promise<JsonObject> | JsonObject;

/** Serves requests on `path`; each line in gets exactly one line out, in order. */
export function serveJsonSocket(path: string, handler: RequestHandler): Promise<net.Server> {
  try {
    unlinkSync(path); // a stale socket from a killed process
  } catch {
    /* not there */
  }
  const server = net.createServer((socket) => {
    let buffered = '';
    let chain = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > 16 * 1024 * 1024) return socket.destroy();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        chain = chain.then(async () => {
          let reply: JsonObject;
          try {
            reply = await handler(JSON.parse(line) as JsonObject);
          } catch (err) {
            reply = { ok: false, error: (err as Error).message };
          }
          if (!socket.destroyed) socket.write(JSON.stringify(reply) + '\n');
        });
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * Sends one request and waits for its reply. Resolves null when nobody listens on `path`
 * (the process is not running), rejects on timeout.
 */
export function requestJson(path: string, request: JsonObject, timeoutMs = 10_000): Promise<JsonObject | null> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    let buffered = '';
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`no answer from ${path} within ${timeoutMs} ms`))), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        finish(() => {
          try {
            resolve(JSON.parse(line) as JsonObject);
          } catch (err) {
            reject(err as Error);
          }
        });
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') finish(() => resolve(null));
      else finish(() => reject(err));
    });
    socket.on('close', () => finish(() => reject(new Error(`${path} closed without an answer`))));
  });
}
