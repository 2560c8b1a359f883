// Raw newline-delimited JSON over a Unix socket, for tests that send what no client of ours would
// (garbage, malformed requests) and read the lines the server answers with.
import net from 'node:net';

/** Writes `payload` on a new connection to `path` and resolves with the first `count` reply lines, parsed; rejects after `timeoutMs`. */
export function exchangeLines(path: string, payload: string | Buffer, count: number, timeoutMs = 10_000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    const replies: unknown[] = [];
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${replies.length} of ${count} replies from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0 && replies.length < count) {
        replies.push(JSON.parse(buffered.slice(0, nl)));
        buffered = buffered.slice(nl + 1);
      }
      if (replies.length === count) {
        clearTimeout(timer);
        socket.destroy();
        resolve(replies);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
