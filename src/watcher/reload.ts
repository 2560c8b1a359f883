// Pieces of a reload that need no process: the fingerprint of etc/ (so that an edit that
// changes nothing, or the same broken file saved again, does not reload twice) and the
// one-line summaries the operator reads.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InstanceConfig } from '../config/types.js';
import type { DispatcherReloadResult, ListenerInfo } from '../dispatcher/protocol.js';
import { configFileNames } from './config-watch.js';
import { describeListeners } from './control.js';
import { listenerAddress } from '../dispatcher/protocol.js';

/** A hash of the configuration files of `etcDir` as they are now (a missing file counts too). */
export function etcFingerprint(etcDir: string): string {
  const hash = createHash('sha256');
  for (const name of configFileNames(etcDir)) {
    hash.update(`${name}\0`);
    try {
      hash.update(readFileSync(join(etcDir, name)));
    } catch {
      hash.update('\0missing\0');
    }
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** What the job controller made of a reload. */
export type JobControllerOutcome = { state: 'reloaded' } | { state: 'not running' } | { state: 'failed'; error: string };

export interface ReloadOutcome {
  config: InstanceConfig;
  /** null: the dispatcher is not running. */
  dispatcher: DispatcherReloadResult | null;
  jobController: JobControllerOutcome;
}

function where(l: ListenerInfo): string {
  return `${l.service} ${listenerAddress(l)}`;
}

/**
 * The dispatcher's changes as the operator's `imsimta reload` reports them when the watcher
 * applied the same edit a moment before (the command then finds nothing left to change): the
 * earlier reload's new and closed ports, then this one's, an add and a remove of the same
 * port cancelling out.
 */
export function withEarlierChanges(now: DispatcherReloadResult, earlier: Pick<DispatcherReloadResult, 'added' | 'removed'>): DispatcherReloadResult {
  const key = (l: ListenerInfo) => `${l.service} ${l.address ?? ''} ${l.port}`;
  const added = new Map(earlier.added.map((l) => [key(l), l]));
  const removed = new Map(earlier.removed.map((l) => [key(l), l]));
  for (const l of now.added) if (!removed.delete(key(l))) added.set(key(l), l);
  for (const l of now.removed) if (!added.delete(key(l))) removed.set(key(l), l);
  return { ...now, added: [...added.values()], removed: [...removed.values()] };
}

/** `configuration reloaded: 5 rewrite rules, 4 channels; SMTP on 127.0.0.1:25 (new: …); 2 SMTP server processes switched; job controller reloaded` */
export function reloadSummary(o: ReloadOutcome): string {
  const parts = [`${o.config.imta.rules.length} rewrite rules, ${o.config.imta.channels.length} channels`];
  if (o.dispatcher) {
    let line = describeListeners(o.dispatcher.listeners) || 'no ports';
    const changes: string[] = [];
    if (o.dispatcher.added.length) changes.push(`new: ${o.dispatcher.added.map(where).join(', ')}`);
    if (o.dispatcher.removed.length) changes.push(`closed: ${o.dispatcher.removed.map(where).join(', ')}`);
    if (changes.length) line += ` (${changes.join('; ')})`;
    parts.push(line);
    const n = o.dispatcher.reloadedProcesses;
    parts.push(`${n} SMTP server process${n === 1 ? '' : 'es'} switched`);
  } else {
    parts.push('dispatcher not running');
  }
  parts.push(o.jobController.state === 'reloaded' ? 'job controller reloaded' : o.jobController.state === 'not running' ? 'job controller not running' : 'job controller kept its configuration');
  return `configuration reloaded: ${parts.join('; ')}`;
}

/** The lines that say which running part did not take the new configuration (empty when all did). */
export function reloadFailures(o: Omit<ReloadOutcome, 'config'>): string[] {
  const out: string[] = [];
  if (o.dispatcher && !o.dispatcher.ok) out.push(`dispatcher kept its configuration: ${o.dispatcher.error ?? 'no reason given'}`);
  if (o.dispatcher) for (const f of o.dispatcher.failedProcesses) out.push(`${f} (it keeps its configuration)`);
  if (o.jobController.state === 'failed') out.push(`job controller kept its configuration: ${o.jobController.error}`);
  return out;
}
