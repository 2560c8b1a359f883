// `imsimta report` on a large mail.log (issue 21: "1 million mail.log lines in a few seconds,
// streaming, bounded memory"): writes a mail.log of the report tests' known mix
// (test/helpers/mail-log-mix.ts) with about --lines lines, then times the command on it as an
// operator runs it (bin/imsimta, a new process) in text and JSON form, and checks the totals
// against the mix. Peak memory from GNU time where it is installed.
//   node dist/bench/report.js [--lines 1000000] [--runs 3] [--json]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeMailLogMix } from '../test/helpers/mail-log-mix.js';
import { binDir } from '../test/helpers/instance.js';

const { values } = parseArgs({ options: { lines: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } } });
const wantedLines = Number(values.lines);
const runs = Number(values.runs);

const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
try {
  const log = join(dir, 'mail.log');
  // The mix writes about 4.9 lines per message.
  const t0 = performance.now();
  const mix = await writeMailLogMix(log, { messages: Math.ceil(wantedLines / 4.9), startMs: Date.UTC(2026, 11, 1), stepMs: 1500 });
  const writeMs = performance.now() - t0;
  const bytes = statSync(log).size;

  const gnuTime = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
  const results: Array<{ form: string; seconds: number; maxRssMb: number | null; cpuSeconds: number | null }> = [];
  for (const form of ['text', 'json']) {
    for (let i = 0; i < runs; i++) {
      const args = [join(binDir, 'imsimta'), 'report', '--since', 'all', ...(form === 'json' ? ['--json'] : []), log];
      const started = performance.now();
      const r = gnuTime ? spawnSync(gnuTime, ['-f', 'RSS_KB=%M CPU_S=%U+%S', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }) : spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
      const seconds = (performance.now() - started) / 1000;
      if (r.status !== 0) throw new Error(`imsimta report failed: ${r.stderr}`);
      if (form === 'json') {
        const report = JSON.parse(r.stdout) as { lines: { read: number }; totals: { received: { messages: number } } };
        if (report.lines.read !== mix.lines || report.totals.received.messages !== mix.received.messages) throw new Error('the report does not count the mix');
      }
      const rss = /RSS_KB=(\d+)/.exec(r.stderr ?? '');
      const cpu = /CPU_S=([\d.]+)\+([\d.]+)/.exec(r.stderr ?? '');
      results.push({ form, seconds, maxRssMb: rss ? Number(rss[1]) / 1024 : null, cpuSeconds: cpu ? Number(cpu[1]) + Number(cpu[2]) : null });
    }
  }
  const best = (form: string) => Math.min(...results.filter((r) => r.form === form).map((r) => r.seconds));
  const cpu = (form: string) => {
    const xs = results.filter((r) => r.form === form && r.cpuSeconds !== null).map((r) => r.cpuSeconds!);
    return xs.length ? Math.min(...xs) : null;
  };
  const rss = Math.max(...results.map((r) => r.maxRssMb ?? 0));
  const summary = { lines: mix.lines, bytes, writeSeconds: writeMs / 1000, textSeconds: best('text'), jsonSeconds: best('json'), textCpuSeconds: cpu('text'), jsonCpuSeconds: cpu('json'), load: loadavg()[0]!, linesPerSecond: mix.lines / best('text'), maxRssMb: gnuTime ? rss : null, runs };
  if (values.json) console.log(JSON.stringify(summary));
  else
    console.log(
      `imsimta report: ${mix.lines.toLocaleString('en-US')} lines (${(bytes / 1e6).toFixed(0)} MB): ` +
        `text ${summary.textSeconds.toFixed(2)} s${summary.textCpuSeconds !== null ? ` (CPU ${summary.textCpuSeconds.toFixed(2)} s)` : ''}, ` +
        `JSON ${summary.jsonSeconds.toFixed(2)} s${summary.jsonCpuSeconds !== null ? ` (CPU ${summary.jsonCpuSeconds.toFixed(2)} s)` : ''} (best of ${runs}), ` +
        `${Math.round(summary.linesPerSecond).toLocaleString('en-US')} lines/s` +
        (summary.maxRssMb !== null ? `, peak RSS ${summary.maxRssMb.toFixed(0)} MB` : '') +
        `; load average ${summary.load.toFixed(1)} on ${cpus().length} CPUs`,
    );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
