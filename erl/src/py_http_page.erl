%% @doc The live page that py_http serves at `/': one self-contained HTML
%% document (inline CSS, script and SVG; nothing fetched from elsewhere, so
%% it works offline) that polls `/api/state' every second and draws, per
%% pool and worker, resident memory, request rate, latency percentiles and
%% gc pause time over the last minutes, restarts and recycles marked on the
%% time line. For one worker it can start tracemalloc, show the top
%% allocation sites and a flame graph (`/api/flamegraph.svg'), and run the
%% tools of py_http_tools: a memory timeline, a CPU profile, the
%% back-references of an object of a type.
-module(py_http_page).

-export([html/0]).

-spec html() -> iodata().
html() ->
    [<<"<!DOCTYPE html>
<html lang=\"en\"><head><meta charset=\"utf-8\">
<title>pyport: pools at work</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 8px; } h2 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #ddd; padding: 2px 5px; text-align: right; white-space: nowrap; }
th { background: #eee; } td.state-ready { color: #176d2c; } td.state-restarting, td.state-failing { color: #b00; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; margin: 6px 0 14px; }
.plotbox { background: #fff; border: 1px solid #ddd; padding: 4px; }
.plotbox .cap { font-size: 11px; color: #555; }
svg.plot polyline { fill: none; stroke-width: 1.5; }
svg.plot line.mark-restart { stroke: #c00; stroke-dasharray: 3 2; }
svg.plot line.mark-recycle { stroke: #06c; stroke-dasharray: 3 2; }
#status { color: #666; font-size: 11px; }
#trace { background: #fff; border: 1px solid #ddd; padding: 8px; margin-top: 12px; }
#tflame svg { max-width: 100%; height: auto; border: 1px solid #eee; }
#tools { background: #fff; border: 1px solid #ddd; padding: 8px; margin-top: 12px; }
#tools svg { max-width: 100%; height: auto; border: 1px solid #eee; margin-top: 6px; }
button { font-size: 12px; }
</style></head>
<body>
<h1>pyport: pools at work</h1>
<div id=\"status\">loading&hellip;</div>
<div id=\"pools\"></div>
<div id=\"trace\"><b>Memory of one worker</b> (tracemalloc: traces every allocation of that
Python process from the moment it starts, at a cost in speed and memory)
<div>worker: <select id=\"tw\"></select>
<button id=\"tstart\">start tracemalloc</button>
<button id=\"tsnap\">snapshot</button> <span id=\"tmsg\"></span></div>
<div id=\"ttop\"></div><div id=\"tflame\"></div></div>
<div id=\"tools\"><b>Tools for the same worker</b>: its memory over time (RSS, and traced
memory while tracing, each request a band), a CPU profile (flame graph in samples, the hottest
lines), what holds an object of a type
<div><button id=\"tlstart\">start timeline</button> <button id=\"tlstop\">stop timeline</button>
<button id=\"cpstart\">start CPU profile</button> <button id=\"cpstop\">stop CPU profile</button>
type <input id=\"btype\" size=\"24\" placeholder=\"module.Class\"> <button id=\"bgraph\">back-references</button>
<span id=\"xmsg\"></span></div>
<div id=\"xtimeline\"></div><div id=\"xcpu\"></div><div id=\"xtop\"></div><div id=\"xgraph\"></div></div>
<script>
'use strict';
const W = 300, H = 70;
// The URL's fragment: #snapshot=POOL/SLOT and, when the endpoint has a
// token, #token=T (a fragment never reaches a server or its logs).
const hash = new URLSearchParams(location.hash.slice(1));
function api(path, opts) {
  const o = Object.assign({cache: 'no-store'}, opts || {});
  const t = hash.get('token');
  if (t) o.headers = Object.assign({'Authorization': 'Bearer ' + t}, o.headers || {});
  return fetch(path, o);
}
const fmtBytes = b => b == null ? '-' : b >= 1048576 ? (b / 1048576).toFixed(1) + ' MiB' :
  b >= 1024 ? (b / 1024).toFixed(0) + ' KiB' : b.toFixed(0) + ' B';
const fmtUs = u => u >= 1000000 ? (u / 1e6).toFixed(2) + ' s' : u >= 1000 ? (u / 1000).toFixed(1) + ' ms' : u + ' us';
function el(tag, attrs, text) {
  const ns = ['svg', 'polyline', 'line', 'text', 'rect'].includes(tag) ? 'http://www.w3.org/2000/svg' : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const k in (attrs || {})) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
}
// One small time plot: series of [t, value], marks of {t, kind}.
// lines: [[values, colour]], drawn on one scale.
function plot(caption, t, lines, marks, fmt) {
  const box = el('div', {class: 'plotbox'});
  const t0 = t.length ? t[0] : 0, t1 = t.length ? Math.max(t[t.length - 1], t0 + 1) : 1;
  const all = lines.map(([values, colour]) => [values.map(v => v == null ? 0 : v), colour]);
  const vmax = Math.max(1, ...all.flatMap(([vs]) => vs));
  const svg = el('svg', {class: 'plot', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H,
                         'data-points': String(t.length)});
  svg.appendChild(el('rect', {x: 0, y: 0, width: W, height: H, fill: '#fcfcfc'}));
  for (const m of marks) {
    if (m.t < t0) continue;
    const x = ((m.t - t0) / (t1 - t0) * (W - 2) + 1).toFixed(1);
    const l = el('line', {x1: x, x2: x, y1: 0, y2: H, class: 'mark-' + m.kind});
    l.appendChild(el('title', {}, m.kind + ' (OS pid ' + m.os_pid + ')'));
    svg.appendChild(l);
  }
  for (const [vs, colour] of all) {
    const pts = [];
    for (let i = 0; i < t.length; i++)
      pts.push(((t[i] - t0) / (t1 - t0) * (W - 2) + 1).toFixed(1) + ',' + (H - 2 - vs[i] / vmax * (H - 14)).toFixed(1));
    svg.appendChild(el('polyline', {points: pts.join(' '), stroke: colour}));
  }
  svg.appendChild(el('text', {x: 3, y: 11, 'font-size': 10, fill: '#444'}, 'max ' + fmt(vmax)));
  box.appendChild(el('div', {class: 'cap'}, caption));
  box.appendChild(svg);
  return box;
}
const cols = ['slot', 'OS pid', 'state', 'uptime', 'requests', 'in flight', 'py errors', 'timeouts',
              'exits', 'overloaded', 'restarts', 'recycles', 'RSS', 'p50', 'p90', 'p99', 'max', 'gc', 'gc pause'];
function row(w) {
  const e = w.errors, l = w.latency;
  const cells = [w.slot, w.os_pid == null ? '-' : w.os_pid, w.state, (w.uptime_ms / 1000).toFixed(0) + ' s',
                 w.requests, w.in_flight, e.python_exception, e.timeout, e.worker_exited, e.overloaded,
                 w.restarts, w.recycles, fmtBytes(w.rss_bytes), fmtUs(l.p50_us), fmtUs(l.p90_us),
                 fmtUs(l.p99_us), fmtUs(l.max_us), w.gc_collections, fmtUs(w.gc_pause_us)];
  const tr = el('tr', {class: 'worker'});
  cells.forEach((c, i) => {
    const cls = i === 1 ? 'os-pid' : i === 2 ? 'state-' + c : '';
    tr.appendChild(el('td', {class: cls}, String(c)));
  });
  return tr;
}
function render(state) {
  const root = document.getElementById('pools');
  root.textContent = '';
  const sel = document.getElementById('tw'), keep = sel.value;
  sel.textContent = '';
  for (const p of state.pools) {
    const t = p.totals;
    root.appendChild(el('h2', {}, 'pool ' + p.name + ': ' + t.ready + '/' + t.workers + ' ready, ' +
      t.requests + ' requests, p99 ' + fmtUs(t.latency.p99_us) + ', RSS ' + fmtBytes(t.rss_bytes)));
    const table = el('table', {class: 'workers', 'data-pool': p.name});
    const head = el('tr');
    cols.forEach(c => head.appendChild(el('th', {}, c)));
    table.appendChild(head);
    for (const w of p.workers) {
      table.appendChild(row(w));
      const o = el('option', {value: p.name + '/' + w.slot}, p.name + ' slot ' + w.slot + ' (OS pid ' + w.os_pid + ')');
      sel.appendChild(o);
    }
    root.appendChild(table);
    for (const w of p.workers) {
      const s = w.series, plots = el('div', {class: 'plots', 'data-worker': p.name + '/' + w.slot});
      root.appendChild(el('div', {class: 'cap'}, p.name + ' slot ' + w.slot + ' (OS pid ' + w.os_pid +
        '); dashed: restart (red), recycle (blue)'));
      plots.appendChild(plot('RSS', s.t, [[s.rss, '#7a3']], w.marks, fmtBytes));
      plots.appendChild(plot('requests/s', s.t, [[s.rate, '#36c']], w.marks, v => v.toFixed(1)));
      plots.appendChild(plot('latency p50 (orange), p99 (red) per interval', s.t,
                             [[s.p50_us, '#e90'], [s.p99_us, '#c33']], w.marks, fmtUs));
      plots.appendChild(plot('gc pause per interval', s.t, [[s.gc_pause_us, '#939']], w.marks, fmtUs));
      root.appendChild(plots);
    }
  }
  if (keep) sel.value = keep;
  document.getElementById('status').textContent = 'updated ' + new Date(state.now).toLocaleTimeString();
}
function target() {
  const [pool, slot] = document.getElementById('tw').value.split('/');
  return 'pool=' + encodeURIComponent(pool) + '&slot=' + slot;
}
document.getElementById('tstart').onclick = async () => {
  const r = await api('/api/tracemalloc/start?' + target(), {method: 'POST', headers: {'X-Pyport-Action': '1'}});
  document.getElementById('tmsg').textContent = r.ok ? 'tracemalloc started' : 'failed: ' + await r.text();
};
async function snapshot() {
  const q = target(), r = await api('/api/tracemalloc/top?' + q), msg = document.getElementById('tmsg');
  const body = await r.json();
  if (!r.ok) { msg.textContent = 'failed: ' + JSON.stringify(body.error); return; }
  const table = el('table');
  const head = el('tr');
  ['site', 'size', 'blocks'].forEach(c => head.appendChild(el('th', {}, c)));
  table.appendChild(head);
  for (const s of body.ok) {
    const tr = el('tr');
    [s.filename + ':' + s.lineno, fmtBytes(s.size), s.count].forEach(c => tr.appendChild(el('td', {}, String(c))));
    table.appendChild(tr);
  }
  const top = document.getElementById('ttop');
  top.textContent = '';
  top.appendChild(table);
  // The flame graph is inlined: its boxes' titles show on hover.
  const svg = await api('/api/flamegraph.svg?' + q);
  document.getElementById('tflame').innerHTML = svg.ok ? await svg.text() : '';
  msg.textContent = 'snapshot taken';
}
document.getElementById('tsnap').onclick = snapshot;
// The tools: each answer is drawn in its own box (SVGs inlined).
const action = () => ({method: 'POST', headers: {'X-Pyport-Action': '1'}});
const xmsg = t => { document.getElementById('xmsg').textContent = t; };
async function failed(r) { return 'failed: ' + await r.text(); }
async function timelineStart() {
  const r = await api('/api/timeline/start?' + target(), action());
  xmsg(r.ok ? 'timeline started' : await failed(r));
}
async function timelineStop() {
  const r = await api('/api/timeline/stop?' + target(), action());
  if (!r.ok) return xmsg(await failed(r));
  document.getElementById('xtimeline').innerHTML = await r.text();
  xmsg('timeline stopped');
}
async function cpuStart() {
  const r = await api('/api/cpu_profile/start?' + target(), action());
  xmsg(r.ok ? 'CPU profile started' : await failed(r));
}
async function cpuStop() {
  const r = await api('/api/cpu_profile/stop?' + target(), action());
  if (!r.ok) return xmsg(await failed(r));
  const p = (await r.json()).ok;
  document.getElementById('xcpu').innerHTML = p.svg;
  const table = el('table', {class: 'hot'}), head = el('tr');
  ['hot line', 'function', 'samples'].forEach(c => head.appendChild(el('th', {}, c)));
  table.appendChild(head);
  for (const l of p.top) {
    const tr = el('tr');
    [l.file + ':' + l.line, l.function, l.samples].forEach(c => tr.appendChild(el('td', {}, String(c))));
    table.appendChild(tr);
  }
  const top = document.getElementById('xtop');
  top.textContent = '';
  top.appendChild(table);
  xmsg('CPU profile stopped: ' + p.samples + ' samples, ' + p.idle + ' idle');
}
async function backrefs() {
  const type = document.getElementById('btype').value;
  const r = await api('/api/backrefs.svg?' + target() + '&type=' + encodeURIComponent(type));
  if (!r.ok) return xmsg(await failed(r));
  document.getElementById('xgraph').innerHTML = await r.text();
  xmsg('back-references of a ' + type);
}
document.getElementById('tlstart').onclick = timelineStart;
document.getElementById('tlstop').onclick = timelineStop;
document.getElementById('cpstart').onclick = cpuStart;
document.getElementById('cpstop').onclick = cpuStop;
document.getElementById('bgraph').onclick = backrefs;
// #tools=POOL/SLOT&type=T: run every tool on that worker for a second.
async function runTools(w) {
  document.getElementById('tw').value = w;
  document.getElementById('btype').value = hash.get('type') || '';
  await timelineStart();
  await cpuStart();
  await new Promise(done => setTimeout(done, 1000));
  await timelineStop();
  await cpuStop();
  if (hash.get('type')) await backrefs();
}
// #snapshot=POOL/SLOT: take that worker's snapshot once the page is drawn
// (a link to it; tracemalloc must be running there).
let first = true;
async function poll() {
  try {
    const r = await api('/api/state');
    render(await r.json());
    const snap = hash.get('snapshot');
    if (first && snap) { document.getElementById('tw').value = snap; await snapshot(); }
    const tools = hash.get('tools');
    if (first && tools) await runTools(tools);
    first = false;
  } catch (e) {
    document.getElementById('status').textContent = 'no answer from the node: ' + e;
  }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
">>].
