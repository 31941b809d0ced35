/**
 * The `/history` HTML page: a per-stream summary (last reading, how long ago,
 * last status) over a table of recent requests. Everything that came from a
 * request is HTML-escaped; the page has no script, so it renders under a
 * strict Content-Security-Policy, and reads on a phone.
 */
import type { HistoryEntry } from './history.js';

export interface StreamSummary {
  readonly stream: string;
  /** Epoch ms, or null for a stream never seen. */
  readonly lastReceived: number | null;
  readonly lastStatus: number | null;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] as string);
}

function ago(ms: number): string {
  const sec = Math.round(ms / 1000);
  if (sec < 120) return `${sec} s ago`;
  if (sec < 7200) return `${Math.round(sec / 60)} min ago`;
  return `${Math.round(sec / 3600)} h ago`;
}

function statusClass(status: number | null): string {
  if (status === null) return 'none';
  return status < 300 ? 'ok' : status < 500 ? 'warn' : 'bad';
}

export function renderHistoryPage(entries: readonly HistoryEntry[], summaries: readonly StreamSummary[], now: number, filter: { stream?: string; limit: number }): string {
  const cards = summaries
    .map((s) => {
      const last = s.lastReceived === null ? 'never seen' : `${new Date(s.lastReceived).toISOString()} (${ago(now - s.lastReceived)})`;
      return `<li class="${statusClass(s.lastStatus)}"><b>${escapeHtml(s.stream)}</b><span>last reading: ${escapeHtml(last)}</span><span>last status: ${s.lastStatus ?? '–'}</span></li>`;
    })
    .join('\n');
  const rows = entries
    .map(
      (e) =>
        `<tr class="${statusClass(e.status)}"><td>${escapeHtml(e.time)}</td><td>${escapeHtml(e.stream)}</td><td>${escapeHtml(e.ip)}</td><td>${e.status}${e.replayed ? ' (replayed)' : ''}</td><td>${e.rows}</td><td><code>${escapeHtml(e.payload)}</code></td></tr>`,
    )
    .join('\n');
  const title = filter.stream === undefined ? 'all streams' : `stream ${escapeHtml(filter.stream)}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sensor-ingest history</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;padding:12px;max-width:1100px;color:#222}
h1{font-size:1.3em;margin:0 0 8px}
ul{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:8px}
li{border:1px solid #ccc;border-left:6px solid #999;border-radius:6px;padding:8px;display:flex;flex-direction:column}
li.ok{border-left-color:#2a2}li.warn{border-left-color:#d90}li.bad{border-left-color:#c22}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
tr.warn td{background:#fff6e0}tr.bad td{background:#fde8e8}
code{word-break:break-all;white-space:pre-wrap}
</style>
</head>
<body>
<h1>sensor-ingest: recent ingest requests</h1>
<ul>
${cards}
</ul>
<p>Newest first, ${title}, at most ${filter.limit}. Filter with <code>?stream=&lt;name&gt;&amp;limit=&lt;n&gt;</code>; JSON at <code>/history/json</code>.</p>
<div class="scroll">
<table>
<thead><tr><th>time</th><th>stream</th><th>client</th><th>status</th><th>rows</th><th>payload</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</div>
</body>
</html>
`;
}
