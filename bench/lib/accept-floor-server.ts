// The accept floor: the least a Node.js SMTP responder can do per message, for bench/accept-smtp.ts
// to measure beside Postfix and tsubame. No smtp-server, no rewriting, no policy, no log, no
// envelope: a line parser that answers 250 to everything and keeps the message's text durably,
// in one of two ways (or, with `smtp-server`, the library tsubame's sessions run on, with no
// hook but onData, keeping each message in a file as `file` does):
//   file     what DESIGN.md asks of tsubame: one file per message, written, fdatasync'ed, closed
//            and renamed into q/, then the directory fsync'ed (one round shared by all who wait)
//   file-thread  the same files, written by worker threads (WRITER_THREADS, default 1) in batches,
//            one directory fsync per batch
//   journal  the design change issue 20's note names: appended to one journal per process, one
//            fdatasync for every message appended while the previous one ran (group commit)
// Each process accepts from the shared listening socket (node:cluster), as tsubame's do.
//   node dist/bench/lib/accept-floor-server.js ADDRESS PORT DIR PROCS file|file-thread|journal|smtp-server
import cluster from 'node:cluster';
import { createServer, type Socket } from 'node:net';
import { fdatasync, fsync, mkdirSync, openSync, readdirSync, readFileSync, write } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

export type FloorKind = 'file' | 'file-thread' | 'journal' | 'smtp-server';

/** Messages a floor server in DIR has made durable (its files, or its journals' records). */
export function floorMessages(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    if (name.startsWith('journal.')) n += readFileSync(join(dir, name), 'latin1').split('\nMSG ').length - 1;
  }
  try {
    n += readdirSync(join(dir, 'q')).length;
  } catch {
    // journal mode has no q/
  }
  return n;
}

/** Calls resolve-functions in rounds: while one round's sync runs, newcomers wait for the next. */
function groupCommit(sync: (done: () => void) => void): () => Promise<void> {
  let waiting: Array<() => void> = [];
  let running = false;
  const kick = () => {
    if (running || waiting.length === 0) return;
    running = true;
    const round = waiting;
    waiting = [];
    sync(() => {
      running = false;
      for (const r of round) r();
      kick();
    });
  };
  return () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      kick();
    });
}

/**
 * file-thread: the same files, written by one worker thread per process with synchronous calls,
 * in batches (all messages that came while the previous batch ran), one directory fsync per
 * batch: one trip between threads per batch instead of one per call.
 */
const WRITER_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { qDir, tmpDir } = workerData;
const dirFd = fs.openSync(qDir, 'r');
parentPort.on('message', (batch) => {
  for (const { name, text } of batch) {
    const fd = fs.openSync(tmpDir + '/' + name, 'wx');
    fs.writeSync(fd, text, null, 'latin1');
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmpDir + '/' + name, qDir + '/' + name);
  }
  fs.fsyncSync(dirFd);
  parentPort.postMessage(batch.length);
});`;

interface Pending {
  name: string;
  text: string;
  done: () => void;
}

function threadWriter(dir: string, threads: number): (text: string) => Promise<void> {
  const workers = Array.from({ length: threads }, () => ({
    worker: new Worker(WRITER_THREAD, { eval: true, workerData: { qDir: join(dir, 'q'), tmpDir: join(dir, 'tmp') } }),
    inFlight: null as Pending[] | null,
  }));
  let queued: Pending[] = [];
  let serial = 0;
  // each idle writer takes everything queued; with several, their fdatasyncs overlap
  const kick = () => {
    for (const w of workers) {
      if (queued.length === 0) return;
      if (w.inFlight) continue;
      w.inFlight = queued;
      queued = [];
      w.worker.postMessage(w.inFlight.map(({ name, text }) => ({ name, text })));
    }
  };
  for (const w of workers) {
    w.worker.on('message', () => {
      const batch = w.inFlight ?? [];
      w.inFlight = null;
      for (const m of batch) m.done();
      kick();
    });
  }
  return (text) =>
    new Promise<void>((done) => {
      queued.push({ name: `${process.pid}.${serial++}`, text, done });
      kick();
    });
}

function durableWriter(dir: string, durability: 'file' | 'file-thread' | 'journal', threads: number): (text: string) => Promise<void> {
  if (durability === 'file-thread') return threadWriter(dir, threads);
  if (durability === 'journal') {
    const fd = openSync(join(dir, `journal.${process.pid}`), 'a');
    const commit = groupCommit((done) => fdatasync(fd, () => done()));
    return async (text) => {
      const record = `\nMSG ${text.length}\n${text}`;
      await new Promise<void>((resolve, reject) => write(fd, record, null, 'latin1', (err) => (err ? reject(err) : resolve())));
      await commit();
    };
  }
  const qDir = join(dir, 'q');
  const dirFd = openSync(qDir, 'r');
  const syncDir = groupCommit((done) => fsync(dirFd, () => done()));
  let serial = 0;
  return async (text) => {
    const name = `${process.pid}.${serial++}`;
    const tmp = join(dir, 'tmp', name);
    const fh = await open(tmp, 'wx');
    await fh.write(text, null, 'latin1');
    await fh.datasync();
    await fh.close();
    await rename(tmp, join(qDir, name));
    await syncDir();
  };
}

function serve(socket: Socket, keep: (text: string) => Promise<void>): void {
  let pending = '';
  let body: string[] | null = null;
  let busy = false;
  socket.setEncoding('latin1');
  socket.on('error', () => socket.destroy());
  socket.write('220 floor ESMTP\r\n');
  const drain = async () => {
    if (busy) return;
    busy = true;
    for (;;) {
      const end = pending.indexOf('\r\n');
      if (end < 0) break;
      const line = pending.slice(0, end);
      pending = pending.slice(end + 2);
      if (body) {
        if (line !== '.') {
          body.push(line);
          continue;
        }
        const text = body.join('\r\n');
        body = null;
        await keep(text);
        socket.write('250 2.0.0 Ok: queued\r\n');
        continue;
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') socket.write('250-floor\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
      else if (verb === 'DATA') {
        body = [];
        socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
      } else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
      else socket.write('250 2.0.0 Ok\r\n');
    }
    busy = false;
  };
  socket.on('data', (chunk: string) => {
    pending += chunk;
    void drain();
  });
}

/** The library's connection without its fixed 100 ms pause before the greeting (as tsubame's, src/smtp-server/connection.ts). */
class PromptConnection extends SMTPConnection {
  override init(): void {
    this._setListeners(() => this.connectionReady());
  }
}

/** The library's connect() with the prompt connection. */
class FloorSmtpServer extends SMTPServer {
  override connect(socket: Socket): void {
    const connection = new PromptConnection(this, socket, null);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => this._onClientConnect(data));
    connection.init();
  }
}

/** smtp-server with the least a queue needs: collect DATA, keep it in a file, 250. */
function smtpServerFloor(keep: (text: string) => Promise<void>): FloorSmtpServer {
  const server = new FloorSmtpServer({
    name: 'floor',
    banner: 'floor',
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    hideENHANCEDSTATUSCODES: false,
    disableReverseLookup: true,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        keep(Buffer.concat(chunks).toString('latin1')).then(() => callback(null), callback);
      });
    },
  });
  server.on('error', () => {});
  return server;
}

if (process.argv[1]?.endsWith('accept-floor-server.js')) {
  const [address, port, dir, procs, kind, threads = '1'] = process.argv.slice(2);
  if (!address || !port || !dir || !procs || !kind || !['file', 'file-thread', 'journal', 'smtp-server'].includes(kind)) {
    console.error('usage: accept-floor-server ADDRESS PORT DIR PROCS file|file-thread|journal|smtp-server [WRITER_THREADS]');
    process.exit(64);
  }
  if (cluster.isPrimary) {
    cluster.schedulingPolicy = cluster.SCHED_NONE; // the workers accept themselves, not the primary for them
    for (const d of ['q', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
    for (let i = 0; i < Number(procs); i++) cluster.fork();
    process.on('SIGTERM', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill();
      process.exit(0);
    });
  } else {
    const keep = durableWriter(dir, kind === 'smtp-server' ? 'file' : (kind as 'file' | 'file-thread' | 'journal'), Number(threads));
    // smtp-server is fed sockets from a plain listener, as tsubame feeds it
    const smtp = kind === 'smtp-server' ? smtpServerFloor(keep) : null;
    const server = createServer((s) => (smtp ? smtp.connect(s) : serve(s, keep)));
    server.listen(Number(port), address);
    process.on('exit', () => server.close());
  }
}
