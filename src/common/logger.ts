// Component logs: pino JSON lines in log/<component>.log. Every log file a process holds open
// (these, and log/mail.log through onLogReopen) is reopened on SIGHUP, so that logrotate can
// move it away. Worker threads receive no signals: the main thread passes the reopen on to
// them over a BroadcastChannel.
import pino from 'pino';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { BroadcastChannel, isMainThread } from 'node:worker_threads';

export type Logger = pino.Logger;

const REOPEN_CHANNEL = 'tsubame:reopen-logs';

// Process-wide by nature: a signal reaches the process, not one object.
const destinations: Array<{ reopen(): void; flushSync(): void }> = [];
const reopenHooks = new Set<() => void>();
let hangupInstalled = false;

export function createLogger(logDir: string, component: string, level: string = process.env.TSUBAME_LOG_LEVEL ?? 'info'): Logger {
  mkdirSync(logDir, { recursive: true });
  // The file is opened before this returns: a process that exits at once (a port in use) must
  // still write its line, and an asynchronous open not done by then made pino's exit hook throw
  // "sonic boom is not ready yet" into console.log. Writes are asynchronous from then on; the
  // exit hook is ours (syncLogs, which never throws).
  const dest = pino.destination({ dest: join(logDir, `${component}.log`), sync: true, minLength: 0, mkdir: true });
  (dest as unknown as { sync: boolean }).sync = false;
  destinations.push(dest);
  reopenLogsOnHangup();
  syncLogsOnExit();
  return pino({ level, base: { component, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { log: withoutBaseKeys } }, dest);
}

/** The keys every line carries already (pino's base). */
const BASE_KEYS = ['component', 'pid'] as const;

/**
 * A log call's fields, renamed where they would repeat a key of the line's own (pino writes the
 * base and the fields side by side, and a JSON object must not carry a key twice): `pid` of
 * another process becomes `subject_pid`; this process's own pid again is left out.
 */
export function withoutBaseKeys(fields: Record<string, unknown>): Record<string, unknown> {
  if (!BASE_KEYS.some((k) => k in fields)) return fields;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key === 'pid' && value === process.pid) continue;
    out[(BASE_KEYS as readonly string[]).includes(key) ? `subject_${key}` : key] = value;
  }
  return out;
}

/** Calls `reopen` whenever the logs are reopened (SIGHUP). Returns the function that unregisters it. */
export function onLogReopen(reopen: () => void): () => void {
  reopenLogsOnHangup();
  reopenHooks.add(reopen);
  return () => void reopenHooks.delete(reopen);
}

/**
 * Reopens every log file of this process by name (the old descriptors may point at a file
 * logrotate renamed), and tells this process's worker threads to do the same.
 */
export function reopenLogs(): void {
  reopenHere();
  if (isMainThread) {
    const channel = new BroadcastChannel(REOPEN_CHANNEL);
    channel.postMessage('reopen');
    channel.close();
  }
}

/** Installs the SIGHUP handler (main thread) or the reopen listener (worker thread), once. */
export function reopenLogsOnHangup(): void {
  if (hangupInstalled) return;
  hangupInstalled = true;
  if (isMainThread) {
    process.on('SIGHUP', reopenLogs);
  } else {
    const channel = new BroadcastChannel(REOPEN_CHANNEL);
    channel.onmessage = () => reopenHere();
    channel.unref(); // must not keep the worker alive
  }
}

function reopenHere(): void {
  for (const d of destinations) {
    try {
      d.reopen();
    } catch {
      /* not open yet: it opens the new file anyway */
    }
  }
  for (const hook of [...reopenHooks]) {
    try {
      hook();
    } catch {
      /* one failing hook must not keep the others from reopening */
    }
  }
}

let exitHookInstalled = false;

function syncLogsOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', syncLogs);
}

/** Writes the buffered log lines to their files now (before the process exits). */
export function syncLogs(): void {
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
