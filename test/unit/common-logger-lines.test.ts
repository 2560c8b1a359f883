// Component log lines (src/common/logger.ts): each a JSON object with every key once, also when
// a log call names another process's pid; and a process that exits at once, before an
// asynchronous open could have finished, still writes its line and prints no stack trace.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, syncLogs, withoutBaseKeys } from '../../src/common/logger.js';
import { waitFor } from '../helpers/instance.js';

const dir = mkdtempSync(join(tmpdir(), 'tsubame-logger-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The keys of a JSON object's text in order, repeats included (JSON.parse keeps only the last). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"(\s*:)?|[{}[\]]/g)) {
    if (m[0] === '{' || m[0] === '[') depth++;
    else if (m[0] === '}' || m[0] === ']') depth--;
    else if (m[2] && depth === 1) keys.push(m[1]!);
  }
  return keys;
}

test('a field named like a key of the line itself is renamed, never repeated', async () => {
  const logger = createLogger(dir, 'keys');
  logger.info({ part: 'dispatcher', pid: 424242 }, 'part ready');
  logger.info({ pid: process.pid }, 'own pid again');
  logger.info({ component: 'other' }, 'component field');
  syncLogs();
  const lines = await waitFor(() => {
    const text = readFileSync(join(dir, 'keys.log'), 'utf8').trim().split('\n');
    return text.length === 3 ? text : null;
  });
  for (const line of lines) {
    const keys = topLevelKeys(line);
    assert.equal(new Set(keys).size, keys.length, `repeated key in ${line}`);
  }
  // By message: a synchronous flush may write the buffered lines before the one already on its way.
  const byMsg = new Map(lines.map((l) => JSON.parse(l) as Record<string, unknown>).map((o) => [o.msg, o]));
  const [ready, own, other] = ['part ready', 'own pid again', 'component field'].map((m) => byMsg.get(m));
  assert.equal(ready!.pid, process.pid);
  assert.equal(ready!.subject_pid, 424242);
  assert.equal(own!.pid, process.pid);
  assert.equal('subject_pid' in own!, false);
  assert.equal(other!.component, 'keys');
  assert.equal(other!.subject_component, 'other');
});

test('withoutBaseKeys leaves other fields as they are', () => {
  const fields = { service: 'SMTP', served: 3 };
  assert.equal(withoutBaseKeys(fields), fields);
  assert.deepEqual(withoutBaseKeys({ pid: -1, service: 'SMTP' }), { subject_pid: -1, service: 'SMTP' });
});

test('a process that logs and exits at once writes its line and no stack trace', async () => {
  const logger = fileURLToPath(new URL('../../src/common/logger.js', import.meta.url));
  const script = `const { createLogger } = await import(${JSON.stringify(logger)});
const log = createLogger(${JSON.stringify(dir)}, 'early');
log.error('port 25 on all addresses is in use by another program');
process.exit(1);`;
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }));
  });
  assert.equal(code, 1);
  assert.equal(stderr, '', 'nothing on the console (it was: Error: sonic boom is not ready yet)');
  assert.match(readFileSync(join(dir, 'early.log'), 'utf8'), /"msg":"port 25 on all addresses is in use by another program"/);
});
