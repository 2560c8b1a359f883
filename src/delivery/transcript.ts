// master_debug: the SMTP conversation of a job written to log/<channel>_master.log-<id>, as
// Messaging Server does. nodemailer logs bunyan-style (entry, format, ...args); pino would drop
// the extra arguments, so lines are formatted here with util.format (node-libraries.md §6).
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';
import { threadId } from 'node:worker_threads';
import type { Target } from './mx.js';
import type { SessionLogger } from './smtp-client.js';
import { describeHost } from './status.js';

export interface Transcript {
  path: string;
  forHost(target: Target): SessionLogger;
  close(): Promise<void>;
}

let sequence = 0;

export function openTranscript(logDir: string, channel: string): Transcript {
  mkdirSync(logDir, { recursive: true });
  const id = `${Date.now().toString(36)}${process.pid.toString(36)}${threadId.toString(36)}${(sequence++).toString(36)}`;
  const path = join(logDir, `${channel}_master.log-${id}`);
  const out: WriteStream = createWriteStream(path, { flags: 'a' });
  out.on('error', () => {
    /* a debug log that cannot be written must not stop delivery */
  });
  let connection = 0;
  return {
    path,
    forHost(target) {
      const prefix = `${describeHost(target)} #${++connection}`;
      const write = (level: string) => (...args: unknown[]) => {
        const rest = typeof args[0] === 'object' && args[0] !== null ? args.slice(1) : args;
        const line = format(...(rest as [unknown, ...unknown[]]));
        out.write(`${new Date().toISOString()} ${prefix} ${level === 'debug' || level === 'info' ? '' : `${level.toUpperCase()} `}${line.replace(/\r?\n/g, '\\n')}\n`);
      };
      return { trace: write('trace'), debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), fatal: write('fatal') };
    },
    close: () => new Promise((resolve) => out.end(resolve)),
  };
}
