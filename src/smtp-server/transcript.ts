// `slave_debug`: a transcript of the SMTP sessions of this process in
// log/<channel>_slave.log-<pid> (one file per server process, each line tagged with the session
// id). smtp-server logs through a bunyan-style logger and passes its text as extra arguments
// (`logger.debug({tnx:'send'}, 'S:', line)`), so the arguments are formatted with util.format.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';

type LogMethod = (entry: Record<string, unknown> | undefined, message?: unknown, ...args: unknown[]) => void;
export interface BunyanLikeLogger {
  trace: LogMethod;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  fatal: LogMethod;
}

export function transcriptPath(logDir: string, channel: string, pid: number = process.pid): string {
  return join(logDir, `${channel}_slave.log-${pid}`);
}

/** One transcript line: time, session id, then the text (controls made visible). */
export function formatTranscriptLine(time: Date, entry: Record<string, unknown> | undefined, message: unknown, args: unknown[]): string {
  const cid = typeof entry?.cid === 'string' ? entry.cid : '-';
  const text = message === undefined ? '' : format(message, ...args);
  return `${time.toISOString()} ${cid} ${text.replace(/\r?\n/g, '\\n').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}\n`;
}

export class Transcript {
  private readonly stream: WriteStream;
  readonly logger: BunyanLikeLogger;

  constructor(readonly path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    this.stream = createWriteStream(path, { flags: 'a' });
    this.stream.on('error', () => {
      /* a transcript that cannot be written must not stop mail */
    });
    const write: LogMethod = (entry, message, ...args) => {
      this.stream.write(formatTranscriptLine(new Date(), entry, message, args));
    };
    this.logger = { trace: write, debug: write, info: write, warn: write, error: write, fatal: write };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }
}
