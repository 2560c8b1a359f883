// The read-only status page (GET / on METRICS_PORT): one server-rendered HTML page of a
// snapshot, refreshed by the browser every 5 s (meta refresh, no script): charts of the last
// hours (inline SVG, status-charts.ts), the processes, services, pools, queue, deferrals and
// returns grouped by reason (each linking to its queue entries, renderGroupPage) and the last
// deferrals. Every text that comes from the instance is escaped, above all what comes from mail
// (addresses, remote replies). Pure: the snapshot in, the page out.
import type { InstanceSnapshot, ReloadView } from './snapshot.js';
import { listenerAddress } from '../dispatcher/protocol.js';
import { escapeHtml } from './html.js';
import { describeScan } from '../job-controller/scan-progress.js';
import { shapingRateText, shapingStateText } from '../job-controller/shaping-view.js';
import { renderOutcomeGroups, renderTrafficCharts } from './status-charts.js';
import type { OutcomeGroup, OutcomeRecord } from './history.js';
import type { QueuedEntry } from '../queue/index.js';

const STATUS_REFRESH_SECONDS = 5;

export { escapeHtml };

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago". */
export function relativeTime(thenMs: number, nowMs: number): string {
  const s = Math.round((nowMs - thenMs) / 1000);
  if (s < 0) return `in ${formatDuration(-s * 1000)}`;
  if (s < 5) return 'just now';
  return `${formatDuration(s * 1000)} ago`;
}

/** "42 s", "3 min", "5 h", "2 d" (the larger unit once it is whole). */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

const STYLE = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.35rem;margin:0 0 .2rem}h2{font-size:1.05rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #d8dde6;padding-bottom:.2rem}
.meta{color:#5b6475;margin:0}.problems{background:#fff3cd;border:1px solid #e6c65c;padding:.5rem .8rem;margin:1rem 0}
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.3rem .6rem;border-bottom:1px solid #e6e9ef;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600;white-space:nowrap}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.link{white-space:nowrap}td.reason{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-word}td.addr{word-break:break-all}td.time,td.n{white-space:nowrap}
.charts{display:flex;flex-wrap:wrap;gap:.8rem}.charts figure{margin:0;background:#fff;border:1px solid #e6e9ef;padding:.3rem}
svg.chart{display:block;max-width:100%;height:auto;font:11px system-ui,sans-serif}svg.chart .chart-title{font-size:12.5px;font-weight:600;fill:#1d2330}
svg.chart .axis,svg.chart .legend{fill:#5b6475}svg.chart .legend{fill:#1d2330}svg.chart .grid{stroke:#e6e9ef}svg.chart .axis-line,svg.chart .tick{stroke:#8a93a3}
.none{color:#5b6475;font-style:italic}.state-running,.state-ready{color:#16794a}.state-stopped,.state-waiting{color:#b42318}.warn{color:#b42318;font-weight:600}
`;

interface Cell { text: string; num?: boolean; cls?: string; title?: string }

function cell(c: Cell | string | number | null, numeric: boolean): string {
  if (c === null) return `<td class="${numeric ? 'n ' : ''}none">–</td>`;
  const x: Cell = typeof c === 'object' ? c : typeof c === 'number' ? { text: String(c), num: true } : { text: c };
  const cls = [x.num || numeric ? 'n' : '', x.cls ?? ''].filter(Boolean).join(' ');
  return `<td${cls ? ` class="${escapeHtml(cls)}"` : ''}${x.title ? ` title="${escapeHtml(x.title)}"` : ''}>${escapeHtml(x.text)}</td>`;
}

/** A numeric column (`{text, num: true}` header) right-aligns all its cells, the empty ones too. */
function table(headers: Array<string | { text: string; num: true }>, rows: Array<Array<Cell | string | number | null>>, empty: string): string {
  if (rows.length === 0) return `<p class="none">${escapeHtml(empty)}</p>`;
  const numeric = headers.map((h) => typeof h !== 'string');
  const head = headers.map((h) => (typeof h === 'string' ? `<th>${escapeHtml(h)}</th>` : `<th class="n">${escapeHtml(h.text)}</th>`)).join('');
  return `<table><thead><tr>${head}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c, i) => cell(c, numeric[i] ?? false)).join('')}</tr>`).join('')}</tbody></table>`;
}

const n = (text: string) => ({ text, num: true as const });

const TRIGGER: Record<ReloadView['trigger'], string> = { start: 'start', watch: 'edit in etc/', command: 'imsimta reload' };

/** The last configuration change: one line when applied; its errors, prominently, when rejected. */
function renderReload(r: ReloadView, now: number): string {
  const at = (iso: string) => `<span class="time" title="${escapeHtml(iso)}">${escapeHtml(relativeTime(Date.parse(iso), now))}</span>`;
  if (r.ok) return `<p class="meta">Configuration: last ${r.trigger === 'start' ? 'loaded at the start' : `changed by ${escapeHtml(TRIGGER[r.trigger])}`} ${at(r.at)}, applied.</p>`;
  return `<div class="problems"><strong>The last configuration change (${escapeHtml(TRIGGER[r.trigger])}, ${at(r.at)}) was not applied</strong>; the instance keeps the configuration applied ${at(r.lastSuccess)}:<ul>${r.errors.map((e) => `<li>${escapeHtml(e)}</li>`).join('')}</ul></div>`;
}

/** How the status page words a record that settled a deferred recipient later. */
const SETTLED_AS: Record<'D' | 'R' | 'X', string> = { D: 'delivered', R: 'returned to the sender', X: 'deleted by the operator' };

export function renderStatusPage(s: InstanceSnapshot): string {
  const now = s.takenAt;
  const when = (iso: string | null): Cell | null => (iso ? { text: relativeTime(Date.parse(iso), now), title: iso, cls: 'time' } : null);

  const processes = table(
    ['Role', n('PID'), 'Service', 'State', n('Connections'), n('Served'), 'Started'],
    s.processes.map((p) => [
      p.role,
      p.pid,
      p.service,
      p.state === null ? null : { text: p.state, cls: `state-${p.state}` },
      p.connections,
      p.served,
      when(p.started),
    ]),
    'No process is running.',
  );

  const listening = (service: string) =>
    s.listeners
      .filter((l) => l.service === service)
      .map((l) => listenerAddress(l, '*'))
      .join(', ');
  const services = s.services
    ? table(
        ['Service', 'Listening on', n('Processes'), n('Open'), n('Sessions served'), n('Messages queued'), n('Mean enqueue latency')],
        s.services.map((x) => [
          x.service,
          listening(x.service) || null,
          x.processes,
          x.connections,
          x.served,
          x.enqueueLatency.count,
          x.enqueueLatency.count ? { text: `${((x.enqueueLatency.sum / x.enqueueLatency.count) * 1000).toFixed(1)} ms`, num: true } : null,
        ]),
        'No service is configured.',
      )
    : '<p class="none">The dispatcher is not running.</p>';

  const jc = s.jobController;
  const pools = jc
    ? table(['Pool', n('Running'), n('JOB_LIMIT'), n('Threads')], jc.pools.map((p) => [p.name, p.running, p.jobLimit, p.threads]), 'No pool is configured.')
    : '<p class="none">The job controller is not running.</p>';
  const scan = jc?.scan ? `<p class="warn scan">The job controller is ${escapeHtml(describeScan(jc.scan, now))}.</p>` : '';
  const jobs = jc
    ? table(
        [n('Job'), 'Channel', 'Pool', 'Started', n('Batches'), n('Messages'), n('In hand')],
        jc.jobs.map((j) => [j.job, j.channel, j.pool, when(j.started), j.batches, j.messages, j.inHand]),
        'No delivery job is running.',
      )
    : '';

  const counters = new Map((jc?.channels ?? []).map((c) => [c.name, c]));
  const queueNames = [...new Set([...(s.queue ?? []).map((q) => q.channel), ...counters.keys()])].sort();
  const queue = table(
    ['Channel', n('Queued'), n('Held'), n('Oldest'), n('Enqueued'), n('Delivered'), n('Deferred'), n('Returned'), n('Jobs')],
    queueNames.map((name) => {
      const q = s.queue?.find((x) => x.channel === name);
      const c = counters.get(name);
      return [
        c?.stopped ? { text: `${name} (stopped)`, cls: 'warn' } : name,
        q ? q.messages : null,
        q ? q.held : null,
        q && q.oldestMs !== null ? { text: formatDuration(now - q.oldestMs), num: true, title: new Date(q.oldestMs).toISOString() } : null,
        c ? c.messages.enqueued : null,
        c ? c.messages.delivered : null,
        c ? c.messages.deferred : null,
        c ? c.messages.returned : null,
        c ? c.jobs : null,
      ];
    }),
    'No channel.',
  );

  // Each destination of the SMTP channels' fan-outs: throttled ones first, then by recipients waiting.
  const shapingRows = jc?.shaping ?? [];
  const shaping = shapingRows.length
    ? `<h2>Traffic shaping</h2>\n${table(
        ['Channel', 'Destination', 'State', n('Connections'), n('Window'), n('MAX'), n('Rate'), n('Waiting'), n('Oldest'), n('Deferred'), 'Last throttle'],
        shapingRows.map((r) => [
          r.channel,
          { text: r.destination, title: r.hosts.join(', ') },
          r.throttled ? { text: shapingStateText(r, now), cls: 'warn' } : shapingStateText(r, now),
          r.connections,
          r.connectionWindow,
          r.maxConnections,
          { text: shapingRateText(r), num: true },
          r.waiting,
          r.oldest !== null ? { text: formatDuration(now - r.oldest), num: true, title: new Date(r.oldest).toISOString() } : null,
          r.deferred,
          r.lastThrottle ? { text: `${relativeTime(r.lastThrottle.at, now)}: ${r.lastThrottle.reply}`, cls: 'reason' } : null,
        ]),
        'No destination.',
      )}`
    : '';

  const deferrals = table(
    ['When', 'Queue id', 'Channel', 'Recipient', 'Reason', 'Since'],
    s.deferrals.map((d) => [
      { text: relativeTime(d.time.getTime(), now), title: d.time.toISOString(), cls: 'time' },
      d.id,
      d.destination,
      { text: d.recipient, cls: 'addr' },
      { text: d.status, cls: 'reason' },
      // What became of that recipient afterwards, when the part of mail.log read says so.
      d.later ? { text: `${SETTLED_AS[d.later.event]} ${relativeTime(d.later.time.getTime(), now)}`, title: `${d.later.time.toISOString()} ${d.later.status}`, cls: 'time' } : null,
    ]),
    'No deferral in log/mail.log.',
  );

  const charts = s.history
    ? `<h2>The last hours</h2>\n${s.history.minutes.length > 1 ? '' : '<p class="meta">The charts fill in minute by minute from the start of the watcher (and the last hours of mail.log).</p>'}${renderTrafficCharts(s.history)}`
    : '';
  const groups = s.outcomeGroups ? `<h2>Deferrals and returns by reason</h2>\n${renderOutcomeGroups(s.outcomeGroups, (iso) => relativeTime(Date.parse(iso), now))}` : '';
  const rejections = s.rejections
    ? `<h2>Refusals by rule</h2>\n<p class="meta">Since the watcher started; as <code>imsimta report</code> groups them.</p>\n${table(['Rule', n('Refused')], s.rejections.map((r) => [{ text: r.reason, cls: 'reason' }, r.count]), 'Nothing refused.')}`
    : '';
  const reload = s.reload ? renderReload(s.reload, now) : '';
  const problems = s.problems.length ? `<div class="problems"><strong>Not everything could be read:</strong><ul>${s.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul></div>` : '';
  const taken = new Date(now).toISOString();
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${STATUS_REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tsubame status</title>
<style>${STYLE}</style>
</head>
<body>
<h1>tsubame</h1>
<p class="meta">${escapeHtml(s.root)} · watcher pid ${s.watcher.pid}, up ${escapeHtml(formatDuration(now - Date.parse(s.watcher.started)))} · <span title="${escapeHtml(taken)}">as of ${escapeHtml(taken.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</span> · refreshed every ${STATUS_REFRESH_SECONDS} s · <a href="metrics">metrics</a></p>
${problems}
${reload}
${charts}
<h2>Processes</h2>
${processes}
<h2>Services</h2>
${services}
<h2>Pools and jobs</h2>
${scan}
${pools}
${jobs}
<h2>Queue</h2>
${queue}
${shaping}
${groups}
${rejections}
<h2>Recent deferrals</h2>
${deferrals}
</body>
</html>
`;
}

export interface GroupPage {
  takenAt: number;
  group: Pick<OutcomeGroup, 'event' | 'destination' | 'reason'>;
  /** Its newest records, newest first. */
  records: OutcomeRecord[];
  /** The ones still queued, by id. */
  queued: Map<string, QueuedEntry>;
}

/** The queue entries of one group of deferrals or returns (GET /queue?event=&destination=&reason=). */
export function renderGroupPage(p: GroupPage): string {
  const now = p.takenAt;
  const what = p.group.event === 'Q' ? 'Deferred' : 'Returned';
  const byId = new Map<string, OutcomeRecord[]>();
  for (const r of p.records) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
  const rows = [...byId].map(([id, records]) => {
    const q = p.queued.get(id);
    const newest = records[0]!;
    const state = q
      ? `${q.held ? 'held' : q.nextAttempt ? `next attempt ${relativeTime(Date.parse(q.nextAttempt), now)}` : 'due now'}, ${q.attempts} attempt${q.attempts === 1 ? '' : 's'}`
      : p.group.event === 'R' ? 'returned to the sender' : 'no longer queued';
    return [
      { text: id || '–', cls: 'id' },
      newest.channel,
      { text: [...new Set(records.map((r) => r.recipient))].join(', '), cls: 'addr' },
      { text: relativeTime(Date.parse(newest.time), now), title: newest.time, cls: 'time' },
      q ? { text: state, cls: 'state-queued' } : { text: state, cls: 'none' },
    ];
  });
  const title = `${what}: ${p.group.reason}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(`tsubame: ${title}`)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(what)} mail</h1>
<p class="meta"><a href="./">status page</a> · ${escapeHtml(p.group.destination)} · as of ${escapeHtml(new Date(now).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</p>
<p class="reason">${escapeHtml(p.group.reason)}</p>
<h2>Messages (${byId.size})</h2>
${table(['Queue id', 'Channel', 'Recipients', 'Last record', 'In the queue'], rows, 'No message of this group in the last hours.')}
<p class="meta">The queue files: <code>imsimta qm directory CHANNEL</code>; retry now: <code>imsimta flush</code>.</p>
</body>
</html>
`;
}
