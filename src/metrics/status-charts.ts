// The status page's pictures of the last hours, from the history the metrics side keeps: mail
// per minute (messages received, delivered, deferred, returned; recipients rejected), the queue
// depth of the busiest channels, the oldest queued message's age and the open SMTP sessions;
// and the table of deferrals and returns grouped by reason and destination, each linking to
// the page of its queue entries. Pure.
import { renderChart, PALETTE, type ChartSeries } from './charts.js';
import { escapeHtml } from './html.js';
import type { HistoryView, OutcomeGroup } from './history.js';

/** Channels drawn in the queue chart: the ones with the most queued at some point. */
const QUEUE_SERIES = 6;

const EVENT_COLORS = { received: '#0072b2', delivered: '#009e73', deferred: '#e69f00', returned: '#d55e00', rejected: '#cc79a7' } as const;

export function renderTrafficCharts(h: HistoryView): string {
  const events: ChartSeries[] = (['received', 'delivered', 'deferred', 'returned', 'rejected'] as const).map((e) => ({ name: e, color: EVENT_COLORS[e], values: h.events[e] }));
  const busiest = [...h.queue]
    .map((q) => ({ ...q, max: Math.max(0, ...q.values.filter((v): v is number => v !== null)) }))
    .sort((a, b) => b.max - a.max || a.channel.localeCompare(b.channel))
    .slice(0, QUEUE_SERIES);
  const queue: ChartSeries[] = busiest.map((q, i) => ({ name: q.channel, color: PALETTE[i % PALETTE.length]!, values: q.values }));
  const oldestMinutes = h.oldestAge.map((s) => (s === null ? null : Math.round(s / 6) / 10));
  const charts = [
    renderChart({ id: 'mail', title: 'Mail per minute (rejected: recipients)', times: h.minutes, series: events }),
    renderChart({ id: 'queue', title: 'Queued messages per channel', times: h.minutes, series: queue.length ? queue : [{ name: 'no channel', color: PALETTE[7]!, values: h.minutes.map(() => null) }] }),
    renderChart({ id: 'oldest', title: 'Oldest queued message (minutes)', unit: ' min', times: h.minutes, series: [{ name: 'age', color: '#8a6d00', values: oldestMinutes }] }),
    renderChart({ id: 'connections', title: 'Open SMTP sessions', times: h.minutes, series: [{ name: 'sessions', color: '#0072b2', values: h.connections }] }),
  ];
  return `<div class="charts">${charts.map((c) => `<figure>${c}</figure>`).join('')}</div>`;
}

/** The query string of a group's page. */
function groupHref(g: Pick<OutcomeGroup, 'event' | 'destination' | 'reason'>): string {
  const q = new URLSearchParams({ event: g.event, destination: g.destination, reason: g.reason });
  return `queue?${q.toString()}`;
}

export function renderOutcomeGroups(groups: OutcomeGroup[], when: (iso: string) => string, limit = 25): string {
  if (groups.length === 0) return '<p class="none">No deferral or return in the last hours.</p>';
  const rows = groups.slice(0, limit).map(
    (g) =>
      `<tr><td>${g.event === 'Q' ? 'deferred' : 'returned'}</td><td class="n">${g.messages}</td><td class="n">${g.recipients}</td><td class="addr">${escapeHtml(g.destination)}</td><td class="reason">${escapeHtml(g.reason)}</td><td class="time" title="${escapeHtml(g.last)}">${escapeHtml(when(g.last))}</td><td class="link"><a class="entries" href="${escapeHtml(groupHref(g))}">queue entries</a></td></tr>`,
  );
  const more = groups.length > limit ? `<p class="meta">${groups.length - limit} more groups not shown.</p>` : '';
  return `<table class="groups"><thead><tr><th>Outcome</th><th class="n">Messages</th><th class="n">Recipients</th><th>Destination</th><th>Reason</th><th>Last</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>${more}`;
}
