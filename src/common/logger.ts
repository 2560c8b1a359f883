// Component logs: pino JSON lines in log/<component>.log, reopened on SIGHUP for logrotate.
import pino from 'pino';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';

export type Logger = pino.Logger;

const destinations: Array<{ reopen(): void; flushSync(): void }> = [];
let hupInstalled = false;

export function createLogger(logDir: string, component: string, level: string = process.env.TSUBAME_LOG_LEVEL ?? 'info'): Logger {
  mkdirSync(logDir, { recursive: true });
  const dest = pino.destination({ dest: join(logDir, `${component}.log`), sync: false, minLength: 0, mkdir: true });
  destinations.push(dest);
  if (!hupInstalled) {
    hupInstalled = true;
    process.on('SIGHUP', () => {
      for (const d of destinations) d.reopen();
    });
  }
  return pino({ level, base: { component, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** Writes what is buffered before the process exits. */
export function flushLogs(): void {
  for (const d of destinations) {
    try {
      d.flushSync();
    } catch {
      /* not ready yet */
    }
  }
}

/** A logger that drops everything (for tests and tools). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
