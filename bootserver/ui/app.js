// The fleet page: plain DOM over slipwayd's JSON API, with the live event
// stream (GET /v1/events) read through fetch so the token goes in a header.
'use strict';

const S = {
  token: sessionStorage.getItem('slipway.token'),
  role: null, name: null,
  fleetX: sessionStorage.getItem('slipway.x') || 'service',
  fleetY: sessionStorage.getItem('slipway.y') || 'rack',
  // The matrix's window: the first column and row shown, and how many at most.
  fleetXOff: 0, fleetYOff: 0, fleetCols: 20, fleetRows: 50,
  lastEvent: null, stream: null,
  // For people and tests alike: what the page has done so far.
  stats: { start: performance.now(), firstRender: null, renders: 0, events: 0, refreshes: 0, lastRenderMs: 0 },
  pending: null, view: null, auditRows: [],
};
window.slipway = S;

// el('td', {class: 'x', dataset: {x: 1}, style: {width: '3px'}, onclick: f}, child, ...)
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'style' || k === 'dataset') Object.assign(e[k], v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) { super((body && body.error) || ('HTTP ' + status)); this.status = status; this.body = body; }
}

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { Authorization: 'Bearer ' + S.token, ...(opts.headers || {}) } });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (r.status === 401 && path !== '/v1/whoami') { logout('the token is not accepted (' + ((body && body.error) || 401) + ')'); }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

const canWrite = () => S.role !== 'viewer';
const ago = (t, now) => t ? Math.max(0, Math.round((now || Date.now() / 1000) - t)) + ' s ago' : 'never';
const when = (t) => t ? new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '—';
function hue(s) { let h = 0; for (const c of s) h = (h * 31 + c.charCodeAt(0)) % 360; return h; }
const versionColor = (v) => v ? `hsl(${hue(v)}, 55%, 50%)` : '#9aa1ab';
const badStates = new Set(['failed', 'unhealthy', 'rolled-back']);
const movingStates = new Set(['installing', 'installed', 'staging', 'staged', 'rebooting', 'registered']);
const stateSpan = (s) => el('span', { class: 'state-' + (s || 'none') }, s || '—');

// ---- login ----

async function login(token) {
  S.token = token;
  try {
    const me = await api('/v1/whoami');
    S.name = me.name; S.role = me.role;
  } catch (e) {
    if (e.status === 404) { S.name = 'admin'; S.role = 'admin'; } // a server without roles
    else { S.token = null; throw e; }
  }
  // whoami may be absent: the token is only known good once a read works.
  await api('/v1/audit?last=1');
  sessionStorage.setItem('slipway.token', token);
  document.body.dataset.role = S.role;
  $('who').textContent = S.name + ' (' + S.role + ')';
  $('login').hidden = true; $('nav').hidden = false; $('logout').hidden = false;
  startStream();
  route();
}

function logout(message) {
  S.token = null; S.role = null;
  sessionStorage.removeItem('slipway.token');
  if (S.stream) S.stream.abort();
  S.stream = null;
  $('nav').hidden = true; $('logout').hidden = true; $('who').textContent = '';
  $('view').replaceChildren();
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  setLive(false);
}

// ---- the live stream ----

function setLive(on) {
  const l = $('live');
  l.className = 'live ' + (on ? 'on' : 'off');
  l.textContent = on ? 'live' : 'offline';
}

async function startStream() {
  const ctl = new AbortController();
  S.stream = ctl;
  while (S.stream === ctl) {
    try {
      const headers = { Authorization: 'Bearer ' + S.token };
      if (S.lastEvent !== null) headers['Last-Event-ID'] = String(S.lastEvent);
      const r = await fetch('/v1/events', { headers, signal: ctl.signal });
      if (r.status === 401) { logout('the token is not accepted'); return; }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      setLive(true);
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          const ev = { event: 'message', data: '', id: null };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':'), f = c < 0 ? line : line.slice(0, c), v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (f === 'event') ev.event = v; else if (f === 'data') ev.data += v; else if (f === 'id') ev.id = v;
          }
          if (ev.id !== null) S.lastEvent = Number(ev.id);
          onEvent(ev);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    setLive(false);
    await new Promise((res) => setTimeout(res, 2000));
  }
}

function onEvent(ev) {
  if (ev.event === 'hello') {
    const d = JSON.parse(ev.data);
    if (S.lastEvent === null) S.lastEvent = d.last;
    $('live').title = 'live updates from instance ' + d.instance;
    return;
  }
  if (ev.event === 'reset') { scheduleRefresh(); return; }
  if (ev.event !== 'audit') return;
  const e = JSON.parse(ev.data);
  S.stats.events++;
  S.auditRows.push(e);
  if (S.auditRows.length > 500) S.auditRows.splice(0, S.auditRows.length - 500);
  if (S.view && S.view.onAudit) S.view.onAudit(e);
  if (S.view && S.view.refreshOn && S.view.refreshOn(e)) scheduleRefresh();
}

// Views are drawn again at most once a second, however many events come.
function scheduleRefresh() {
  if (S.pending) return;
  S.pending = setTimeout(async () => {
    S.pending = null;
    if (!S.view || !S.view.refresh) return;
    S.stats.refreshes++;
    try { await S.view.refresh(); } catch (e) { showError(e); }
  }, 1000);
}

// ---- routing ----

const views = {};

async function route() {
  if (!S.token) return;
  const parts = (location.hash.replace(/^#\/?/, '') || 'fleet').split('/').map(decodeURIComponent);
  const make = views[parts[0]] || views.fleet;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === '#/' + parts[0]);
  S.view = null;
  if (S.pending) { clearTimeout(S.pending); S.pending = null; }
  document.body.dataset.view = '';
  const v = make(...parts.slice(1));
  S.view = v;
  try { await v.refresh(); } catch (e) { showError(e); }
}

function showError(e) {
  $('view').replaceChildren(el('p', { class: 'error', id: 'error' }, String(e.message || e)));
}

function rendered(name, node) {
  $('view').replaceChildren(node);
  S.stats.renders++;
  if (S.stats.firstRender === null) S.stats.firstRender = performance.now() - S.stats.start;
  document.body.dataset.view = name;
}

// ---- fleet: the matrix over two label keys ----

views.fleet = () => {
  let selected = null;
  const v = {
    refreshOn: (e) => /^(host|rollout|lease)\./.test(e.action),
    async refresh() {
      const t0 = performance.now();
      const f = await api(`/v1/fleet?x=${encodeURIComponent(S.fleetX)}&y=${encodeURIComponent(S.fleetY)}` +
        `&x_offset=${S.fleetXOff}&x_limit=${S.fleetCols}&y_offset=${S.fleetYOff}&y_limit=${S.fleetRows}`);
      // The fleet shrank under the window: its last page instead.
      if ((f.xs.length === 0 && S.fleetXOff > 0) || (f.ys.length === 0 && S.fleetYOff > 0)) {
        const last = (total, size) => Math.floor(Math.max(0, total - 1) / size) * size;
        if (f.xs.length === 0) S.fleetXOff = last(f.x_total, S.fleetCols);
        if (f.ys.length === 0) S.fleetYOff = last(f.y_total, S.fleetRows);
        return v.refresh();
      }
      const node = drawFleet(f);
      rendered('fleet', node);
      S.stats.lastRenderMs = performance.now() - t0;
      if (selected) showCell(selected.x, selected.y);
    },
  };
  function keySelect(id, value, keys, set) {
    const all = [...new Set([value, ...keys])].sort();
    return el('select', { id, onchange: (ev) => { set(ev.target.value); S.fleetXOff = S.fleetYOff = 0; v.refresh(); } },
      all.map((k) => el('option', { value: k, selected: k === value }, k)));
  }
  // "rows 51–100 of 1000 ◂ ▸": the window over one axis, moved a page at a time.
  function pager(id, what, off, shown, total, size, move) {
    if (total <= size && off === 0) return el('span', { id, dataset: { offset: off, shown, total } }, `${total} ${what}`);
    const go = (to) => { move(to); v.refresh(); };
    return el('span', { id, class: 'pager', dataset: { offset: off, shown, total } },
      `${what} ${shown ? off + 1 : 0}–${off + shown} of ${total} `,
      el('button', { id: id + '-prev', disabled: off === 0, onclick: () => go(Math.max(0, off - size)) }, '◂'),
      el('button', { id: id + '-next', disabled: off + shown >= total, onclick: () => go(off + size) }, '▸'));
  }
  function drawFleet(f) {
    const keys = Object.keys(f.keys);
    // The server's window, in its order (numbers in values by their value).
    const xs = f.xs, ys = f.ys;
    const at = new Map(f.cells.map((c) => [c.x + '\t' + c.y, c]));
    const versions = Object.entries(f.versions).sort((a, b) => b[1] - a[1]);
    const states = Object.entries(f.states).sort((a, b) => b[1] - a[1]);
    const head = el('tr', {}, el('th', {}, `${f.y} \\ ${f.x}`), xs.map((x) => el('th', {}, x || '(none)')));
    const rows = ys.map((y) => el('tr', {}, el('th', {}, y || '(none)'), xs.map((x) => cellTd(at.get(x + '\t' + y), x, y))));
    return el('div', {},
      el('h1', {}, 'Fleet'),
      el('p', {}, el('span', { id: 'hosts-total', class: 'total' }, f.hosts), ' hosts; ',
        states.map(([s, n]) => el('span', { class: 'state-count', dataset: { state: s } }, stateSpan(s), ` ${n}  `))),
      el('p', { class: 'legend' }, versions.map(([ver, n]) => el('span', { class: 'version-count', dataset: { version: ver } },
        el('span', { class: 'swatch', style: { background: versionColor(ver) } }), `${ver || '(no version)'}: ${n}`))),
      el('div', { class: 'controls' },
        el('label', {}, 'columns ', keySelect('fleet-x', f.x, keys, (k) => { S.fleetX = k; sessionStorage.setItem('slipway.x', k); })),
        el('label', {}, 'rows ', keySelect('fleet-y', f.y, keys, (k) => { S.fleetY = k; sessionStorage.setItem('slipway.y', k); }))),
      el('div', { class: 'controls' },
        pager('fleet-cols', 'columns', f.x_offset, xs.length, f.x_total, S.fleetCols, (o) => { S.fleetXOff = o; }), ' · ',
        pager('fleet-rows', 'rows', f.y_offset, ys.length, f.y_total, S.fleetRows, (o) => { S.fleetYOff = o; })),
      el('table', { class: 'matrix', id: 'matrix' }, head, rows),
      el('p', { class: 'muted' }, 'Each cell: its hosts, a bar by version (colour); hatched: failed or unhealthy, faded: on its way. Click a cell for its hosts.'),
      el('div', { id: 'cell-hosts' }));
  }
  function cellTd(c, x, y) {
    if (!c) return el('td', { class: 'empty', dataset: { x, y, total: 0 } }, '');
    const by = [...c.by].sort((a, b) => (a.version + a.state).localeCompare(b.version + b.state));
    const title = by.map((b) => `${b.version || '(none)'} ${b.state}: ${b.count}`).join('\n');
    return el('td', { dataset: { x, y, total: c.total }, title, onclick: () => showCell(x, y) },
      el('div', { class: 'total' }, c.total),
      el('div', { class: 'bar' }, by.map((b) => el('span', {
        class: badStates.has(b.state) ? 'bad' : movingStates.has(b.state) ? 'moving' : '',
        dataset: { version: b.version, state: b.state, count: b.count },
        style: { width: (100 * b.count / c.total) + '%', background: versionColor(b.version) } }))),
      el('div', { class: 'muted' }, by.filter((b) => b.state !== 'healthy').map((b) => `${b.count} ${b.state} `)));
  }
  async function showCell(x, y) {
    selected = { x, y };
    for (const td of document.querySelectorAll('#matrix td')) td.classList.toggle('sel', td.dataset.x === x && td.dataset.y === y);
    const q = x ? `?label=${encodeURIComponent(S.fleetX + '=' + x)}` : '';
    const r = await api('/v1/hosts' + q);
    const hosts = r.hosts.filter((h) => (h.labels[S.fleetX] || '') === x && (h.labels[S.fleetY] || '') === y).slice(0, 500);
    $('cell-hosts').replaceChildren(el('h2', {}, `${S.fleetX}=${x || '(none)'}, ${S.fleetY}=${y || '(none)'}`),
      el('table', {}, el('tr', {}, ['host', 'hostname', 'state', 'version', 'last seen'].map((h) => el('th', {}, h))),
        hosts.map((h) => el('tr', {}, el('td', {}, el('a', { href: '#/host/' + h.id }, h.id)), el('td', {}, h.hostname || ''),
          el('td', {}, stateSpan(h.state)), el('td', {}, h.version || ''), el('td', {}, ago(h.last_seen))))));
  }
  return v;
};

// ---- a host ----

views.host = (id) => ({
  refreshOn: (e) => e.target === id,
  async refresh() {
    const h = await api('/v1/hosts/' + encodeURIComponent(id));
    const [leases, events] = await Promise.all([api(`/v1/audit?action=lease&target=${h.id}&last=50`),
      api(`/v1/audit?action=host&target=${h.id}&last=50`)]);
    const mine = (l) => l.entries.filter((e) => e.target === h.id).reverse();
    const kv = (rows) => el('table', { class: 'kv' }, rows.map(([k, val]) => el('tr', {}, el('th', {}, k), el('td', { dataset: { field: k } }, val))));
    const slots = Object.entries(h.slots || {});
    rendered('host', el('div', {},
      el('h1', {}, 'Host ', el('span', { id: 'host-id' }, h.id), h.hostname ? ` (${h.hostname})` : ''),
      kv([['state', stateSpan(h.state)], ['version', el('span', { id: 'host-version' }, h.version || '—')],
        ['running', h.current_image || '—'], ['assigned', h.image || '—'], ['boot', h.boot],
        ['booted slot', h.booted_slot || '—'], ['mac', h.mac || '—'],
        ['labels', Object.entries(h.labels).map(([k, val]) => `${k}=${val}`).join(' ')],
        ['last seen', ago(h.last_seen)], ['registered', when(h.registered)],
        ['lease', h.lease ? `epoch ${h.lease.epoch}, expires ${when(h.lease.expires)}` : 'none'],
        ['quarantined', h.quarantined ? 'yes' : 'no'], ['message', h.message || '']]),
      el('h2', {}, 'Slots'),
      el('table', {}, el('tr', {}, ['slot', 'image', 'version', 'files'].map((t) => el('th', {}, t))),
        slots.map(([s, v]) => el('tr', {}, el('td', {}, s + (s === h.booted_slot ? ' (booted)' : '')),
          el('td', {}, (v && v.image) || '—'), el('td', {}, (v && v.version) || '—'), el('td', {}, (v && v.files) || '')))),
      el('h2', {}, 'Health'), el('pre', { id: 'host-health' }, JSON.stringify(h.health || {}, null, 2)),
      el('h2', {}, 'Reports'), auditTable(mine(events).slice(0, 50), false),
      el('h2', {}, 'Lease history'), auditTable(mine(leases).slice(0, 50), false)));
  },
});

function auditTable(entries, withTarget = true) {
  return el('table', { class: 'audit' },
    el('tr', {}, ['id', 'time', 'actor', 'action', withTarget && 'target', 'detail'].filter(Boolean).map((t) => el('th', {}, t))),
    entries.map(auditRow.bind(null, withTarget)));
}
function auditRow(withTarget, e) {
  const target = e.target && /^h-/.test(e.target) ? el('a', { href: '#/host/' + e.target }, e.target)
    : e.target && e.action.startsWith('rollout.') ? el('a', { href: '#/rollout/' + e.target.replace(/^rollout /, '') }, e.target)
    : e.target && e.action.startsWith('pipeline.') ? el('a', { href: '#/pipeline/' + e.target.replace(/^pipeline /, '') }, e.target) : e.target || '';
  return el('tr', {}, el('td', { class: 'num' }, e.id), el('td', {}, when(e.time)), el('td', {}, e.actor),
    el('td', {}, e.action), withTarget && el('td', {}, target), el('td', {}, e.detail ? JSON.stringify(e.detail) : ''));
}

// ---- rollouts ----

views.rollouts = () => ({
  refreshOn: (e) => e.action.startsWith('rollout.'),
  async refresh() {
    const r = await api('/v1/rollouts');
    rendered('rollouts', el('div', {}, el('h1', {}, 'Rollouts'),
      r.rollouts.length === 0 ? el('p', {}, 'No rollouts yet.') :
        el('table', { id: 'rollouts' }, el('tr', {}, ['id', 'kind', 'image', 'state', 'wave', 'done', 'created'].map((t) => el('th', {}, t))),
          r.rollouts.map((x) => el('tr', {}, el('td', {}, el('a', { href: '#/rollout/' + x.id }, x.id)), el('td', {}, x.kind),
            el('td', {}, x.image || '(previous images)'), el('td', {}, x.state), el('td', {}, `${x.wave} / ${x.waves_total}`),
            el('td', {}, `${x.done} / ${x.hosts}`), el('td', {}, when(x.created)))))));
  },
});

function budgetFor(budgets, group) {
  const key = group.split('=')[0];
  const b = budgets.find((x) => x.selector === group) || budgets.find((x) => x.selector === key);
  if (!b) return { text: 'no budget', max: null };
  if (b.max_unavailable !== null && b.max_unavailable !== undefined) return { text: `max_unavailable ${b.max_unavailable}`, max: b.max_unavailable };
  if (b.max_unavailable_pct !== null && b.max_unavailable_pct !== undefined) return { text: `max_unavailable ${b.max_unavailable_pct}%`, pct: b.max_unavailable_pct };
  return { text: `min_available ${b.min_available}`, min: b.min_available };
}

function failureLimit(spec, hosts) {
  const m = spec.max_failures === undefined ? 0 : spec.max_failures;
  return typeof m === 'string' ? Math.floor(hosts * parseInt(m, 10) / 100) : m;
}

views.rollout = (id) => ({
  refreshOn: (e) => /^(rollout|host|lease)\./.test(e.action),
  async refresh() {
    const [r, b] = await Promise.all([api('/v1/rollouts/' + encodeURIComponent(id)), api('/v1/budgets')]);
    const hosts = r.waves.reduce((n, w) => n + w.hosts, 0), done = r.waves.reduce((n, w) => n + w.done, 0);
    const cur = r.waves.find((w) => w.wave === r.wave) || r.waves[r.waves.length - 1] || { hosts: 0, failed: 0 };
    const limit = failureLimit(r.spec, cur.hosts);
    // As the plan estimates: a reboot (60 s) per wave left with hosts, and the bakes between them.
    const left = r.waves.filter((w) => w.pending + w.assigned > 0);
    const eta = (r.state === 'running' || r.state === 'paused')
      ? left.length * 60 + left.filter((w) => w.wave > r.wave).length * (r.spec.bake || 0) : 0;
    const act = async (a) => {
      if ((a === 'abort' || a === 'rollback') && !confirm(`${a} rollout ${r.id}?`)) return;
      try { const n = await api(`/v1/rollouts/${r.id}/${a}`, { method: 'POST' }); if (n.id !== r.id) location.hash = '#/rollout/' + n.id; else this.refresh(); }
      catch (e) { $('rollout-error').textContent = e.message; }
    };
    const can = { pause: r.state === 'running', resume: r.state === 'paused', abort: r.state !== 'aborted', rollback: r.state !== 'aborted' && r.kind === 'rollout' };
    rendered('rollout', el('div', {},
      el('h1', {}, `Rollout ${r.id}: `, r.image || 'back to the previous images', ' ', el('span', { id: 'rollout-state', dataset: { state: r.state } }, r.state)),
      r.reason ? el('p', { id: 'rollout-reason' }, r.reason) : null,
      el('p', {}, el('span', { id: 'rollout-done' }, `${done} / ${hosts}`), ' hosts done; wave ', `${r.wave} of ${r.waves_total}`,
        '; failures in this wave ', el('span', { id: 'rollout-failures', class: cur.failed > limit ? 'over' : '' }, `${cur.failed} (allowed ${limit})`),
        eta ? el('span', { id: 'rollout-eta' }, `; about ${Math.ceil(eta / 60)} min left at best (a reboot a wave and the bakes; budgets and slow hosts add to it)`) : ''),
      canWrite() ? el('div', { class: 'controls', id: 'rollout-actions' },
        ['pause', 'resume', 'abort', 'rollback'].filter((a) => can[a]).map((a) =>
          el('button', { id: 'btn-' + a, class: a === 'abort' || a === 'rollback' ? 'danger' : '', onclick: () => act(a) }, a))) : null,
      el('p', { id: 'rollout-error', class: 'error' }),
      el('h2', {}, 'Waves'),
      el('table', { id: 'waves' }, el('tr', {}, ['wave', 'hosts', 'progress', 'pending', 'assigned', 'done', 'failed', 'skipped'].map((t) => el('th', {}, t))),
        r.waves.map((w) => el('tr', { dataset: { wave: w.wave } }, el('td', {}, w.wave + (w.wave === r.wave ? ' ◂' : '')), el('td', { class: 'num' }, w.hosts),
          el('td', {}, el('span', { class: 'progress' }, el('span', { style: { width: (w.hosts ? 100 * w.done / w.hosts : 0) + '%' } }))),
          ['pending', 'assigned', 'done', 'failed', 'skipped'].map((k) => el('td', { class: 'num' + (k === 'failed' && w.failed ? ' over' : '') }, w[k]))))),
      el('h2', {}, 'Budgeted groups'),
      r.groups.length === 0 ? el('p', {}, 'No budget applies to these hosts.') :
        el('table', { id: 'groups' }, el('tr', {}, ['group', 'hosts', 'done', 'failed', 'down now', 'budget'].map((t) => el('th', {}, t))),
          r.groups.map((g) => {
            const bud = budgetFor(b.budgets, g.group);
            const allowed = bud.max !== undefined && bud.max !== null ? bud.max : bud.pct !== undefined ? Math.max(1, Math.floor(g.hosts * bud.pct / 100)) : null;
            return el('tr', {}, el('td', {}, g.group), el('td', { class: 'num' }, g.hosts), el('td', { class: 'num' }, g.done),
              el('td', { class: 'num' }, g.failed), el('td', { class: 'num' + (allowed !== null && g.down >= allowed ? ' over' : '') }, allowed !== null ? `${g.down} of ${allowed}` : g.down),
              el('td', {}, bud.text));
          })),
      (r.budgets || []).length ? el('p', { id: 'rollout-budgets' }, 'Its own budgets, which hold its hosts on their way to the smaller of each and the site\'s: ',
        r.budgets.map((x) => `${x.selector}: ${x.budget}`).join(', ')) : null,
      el('h2', {}, 'Spec'), el('pre', {}, JSON.stringify(r.spec, null, 2))));
  },
});

// ---- pipelines ----

// A running pipeline's state in words: its phase, "waiting for approval"
// once nothing else is left.
function pipelineState(p) {
  if (p.state !== 'running') return p.state;
  if (p.phase === 'approval') return 'waiting for approval';
  return (p.phase || 'running') + (p.waiting_for_approval ? ', then an approval' : '');
}
const left = (t) => { const s = Math.max(0, Math.round(t - Date.now() / 1000)); return s >= 120 ? `${Math.ceil(s / 60)} min` : `${s} s`; };

views.pipelines = () => ({
  refreshOn: (e) => e.action.startsWith('pipeline.'),
  async refresh() {
    const r = await api('/v1/pipelines');
    rendered('pipelines', el('div', {}, el('h1', {}, 'Pipelines'),
      el('p', { class: 'muted' }, 'A pipeline is started with slipctl pipeline start FILE (an admin\'s); here it is followed, approved or aborted.'),
      r.pipelines.length === 0 ? el('p', {}, 'No pipelines yet.') :
        el('table', { id: 'pipelines' }, el('tr', {}, ['id', 'name', 'image', 'state', 'stage', 'started'].map((t) => el('th', {}, t))),
          r.pipelines.map((x) => el('tr', { dataset: { id: x.id, state: x.state } }, el('td', {}, el('a', { href: '#/pipeline/' + x.id }, x.id)),
            el('td', {}, x.name), el('td', {}, x.image), el('td', { class: 'pipeline-state' }, pipelineState(x)),
            el('td', {}, `${x.stage} (${x.stage_index + 1} of ${x.stages.length})`), el('td', {}, when(x.created)))))));
  },
});

views.pipeline = (id) => {
  let rollout = null;
  return {
  // Its own entries, and its current rollout's (a wave done, a failure).
  refreshOn: (e) => e.target === 'pipeline ' + id || (e.action.startsWith('rollout.') && rollout !== null && e.target === 'rollout ' + rollout),
  async refresh() {
    const [p, hist] = await Promise.all([api('/v1/pipelines/' + encodeURIComponent(id)),
      api(`/v1/audit?action=pipeline&target=${encodeURIComponent('pipeline ' + id)}&last=100`)]);
    rollout = p.rollout || null;
    const running = p.state === 'running';
    const act = async (a) => {
      if (a === 'abort' && !confirm(`abort pipeline ${p.id}?`)) return;
      try { await api(`/v1/pipelines/${p.id}/${a}`, { method: 'POST' }); this.refresh(); }
      catch (e) { $('pipeline-error').textContent = e.message; }
    };
    // What each gate of a stage says now: passed once the stage is promoted
    // or done; the current stage's from the pipeline; a failure's reason.
    const gate = (st, i, g) => {
      const cur = i === p.stage_index;
      if (st.state === 'promoted' || st.state === 'done') return g === 'approval' && st.approved_by ? `approved by ${st.approved_by}` : 'passed';
      if (g === 'approval') {
        if (st.approved_by) return `approved by ${st.approved_by}`;
        return cur && running ? (p.phase === 'approval' ? 'waiting for an approval' : 'to approve (now, or once the other gates pass)') : 'not approved';
      }
      if (cur && st.state === 'failed') return 'see the reason';
      if (cur && p.phase === 'approval') return 'passed';
      if (g === 'prometheus' && cur && p.checked) return `passing, last checked ${when(p.checked)}`;
      return cur && running ? 'checked at the bake\'s end' : 'not checked';
    };
    const can = { approve: running && p.waiting_for_approval, abort: running };
    rendered('pipeline', el('div', {},
      el('h1', {}, `Pipeline ${p.id}: ${p.name}, `, el('span', { id: 'pipeline-state', dataset: { state: p.state, phase: p.phase || '' } }, pipelineState(p))),
      p.reason ? el('p', { id: 'pipeline-reason', class: p.state === 'failed' ? 'error' : '' }, p.reason) : null,
      el('p', {}, 'Image ', el('b', {}, p.image), `; stage ${p.stage_index + 1} of ${p.stages.length} (`, el('span', { id: 'pipeline-stage' }, p.stage), ')',
        p.rollout ? ['; its rollout ', el('a', { id: 'pipeline-rollout', href: '#/rollout/' + p.rollout }, p.rollout)] : null,
        running && p.phase === 'baking' && p.bake_ends ? el('span', { id: 'pipeline-bake' }, `; bake time left ${left(p.bake_ends)} (ends ${when(p.bake_ends)})`) : null,
        `; started by ${p.actor} ${when(p.created)}`, p.finished ? `, ended ${when(p.finished)}` : ''),
      canWrite() ? el('div', { class: 'controls', id: 'pipeline-actions' },
        ['approve', 'abort'].filter((a) => can[a]).map((a) =>
          el('button', { id: 'btn-pipeline-' + a, class: a === 'abort' ? 'danger' : '', onclick: () => act(a) }, a))) : null,
      el('p', { id: 'pipeline-error', class: 'error' }),
      el('h2', {}, 'Stages'),
      el('table', { id: 'stages' }, el('tr', {}, ['#', 'stage', 'state', 'rollout', 'bake', 'gates', 'started', 'ended'].map((t) => el('th', {}, t))),
        p.stages.map((st, i) => el('tr', { dataset: { stage: st.name, state: st.state }, class: i === p.stage_index ? 'current' : '' },
          el('td', {}, i + 1 + (i === p.stage_index ? ' ◂' : '')), el('td', {}, st.name), el('td', { class: 'stage-state' }, stateSpan(st.state)),
          el('td', {}, st.rollout ? el('a', { href: '#/rollout/' + st.rollout }, st.rollout) : '—'),
          el('td', {}, st.bake ? `${st.bake} s` : 'none'),
          el('td', {}, el('ul', { class: 'gates' }, st.gates.map((g) => el('li', { dataset: { gate: g } }, el('b', {}, g), ': ', gate(st, i, g)))),
            st.rollback_on_failure ? el('span', { class: 'muted' }, 'a failed gate rolls the stage back') : null),
          el('td', {}, when(st.started)), el('td', {}, when(st.finished || (st.state === 'promoted' ? st.rollout_done : null)))))),
      el('h2', {}, 'History'), auditTable(hist.entries.filter((e) => e.target === 'pipeline ' + id).reverse(), false),
      el('h2', {}, 'Spec'), el('pre', {}, JSON.stringify(p.spec, null, 2))));
  },
  };
};

// ---- leases ----

views.leases = () => ({
  refreshOn: (e) => e.action.startsWith('lease.') || e.action === 'budget.set' || e.action === 'budget.delete',
  async refresh() {
    const [f, b, refused] = await Promise.all([api('/v1/fleet?x_limit=0&y_limit=0'), api('/v1/budgets'), api('/v1/audit?action=lease&last=1000')]);
    const holders = new Set(f.leases.map((l) => l.host));
    // A host waits when its last lease event is a refusal.
    const last = new Map();
    for (const e of refused.entries) last.set(e.target, e);
    const waiting = [...last.values()].filter((e) => e.action === 'lease.refuse' && !holders.has(e.target)).reverse();
    rendered('leases', el('div', {}, el('h1', {}, 'Reboot leases'),
      el('p', {}, `${f.leases.length} held; budgets: `, b.budgets.map((x) => `${x.selector} (${budgetFor([x], x.selector).text})`).join(', ') || 'none'),
      el('table', { id: 'leases' }, el('tr', {}, ['host', 'state', 'epoch', 'expires', 'labels'].map((t) => el('th', {}, t))),
        f.leases.map((l) => el('tr', {}, el('td', {}, el('a', { href: '#/host/' + l.host }, l.host)), el('td', {}, stateSpan(l.state)),
          el('td', { class: 'num' }, l.epoch), el('td', {}, when(l.expires)),
          el('td', {}, Object.entries(l.labels).map(([k, v]) => `${k}=${v}`).join(' '))))),
      el('h2', {}, 'Waiting (refused last)'),
      el('table', { id: 'waiting' }, el('tr', {}, ['host', 'since', 'blocked by', 'reason'].map((t) => el('th', {}, t))),
        waiting.map((e) => el('tr', {}, el('td', {}, el('a', { href: '#/host/' + e.target }, e.target)), el('td', {}, when(e.time)),
          el('td', {}, (e.detail && e.detail.group) || '—'), el('td', {}, (e.detail && e.detail.reason) || ''))))));
  },
});

// ---- audit ----

views.audit = () => {
  let table = null;
  return {
    async refresh() {
      const r = await api('/v1/audit?last=200');
      table = auditTable(r.entries.reverse());
      table.id = 'audit';
      rendered('audit', el('div', {}, el('h1', {}, 'Audit log'), el('p', { class: 'muted' }, 'Newest first; new entries appear as they are written, on any instance.'), table));
    },
    onAudit(e) {
      if (!table) return;
      table.rows[0].after(auditRow(true, e));
      while (table.rows.length > 501) table.deleteRow(-1);
    },
  };
};

// ---- images and their package diff ----

async function packagesOf(img) {
  const r = await fetch('/blobs/sha256/' + img.manifest);
  if (!r.ok) throw new Error(`manifest of ${img.name}:${img.version}: HTTP ${r.status}`);
  const m = await r.json();
  const p = new Map();
  for (const x of (m.lock && m.lock.packages) || []) p.set(x.name + '.' + x.arch, `${x.epoch && x.epoch !== '0' ? x.epoch + ':' : ''}${x.version}-${x.release}`);
  return p;
}

// The choice of the two images and the diff shown stay when the view is drawn again
// (an image event, or a refresh the view before it had asked for).
views.images = () => {
  let choice = null, shown = null;
  return {
    refreshOn: (e) => e.action.startsWith('image.'),
    async refresh() {
      const r = await api('/v1/images');
      const all = [...r.images, ...r.replicating];
      const byId = new Map(all.map((x) => [x.id, x]));
      if (!choice || !byId.has(choice[0]) || !byId.has(choice[1])) {
        choice = all.length >= 2 ? [all[1].id, all[0].id] : null;
        shown = null;
      }
      const pick = (id, k) => el('select', { id, onchange: (ev) => { choice[k] = ev.target.value; } },
        all.map((x) => el('option', { value: x.id, selected: x.id === choice[k] }, `${x.name}:${x.version}`)));
      const diff = async () => {
        const a = byId.get(choice[0]), b = byId.get(choice[1]);
        const [pa, pb] = await Promise.all([packagesOf(a), packagesOf(b)]);
        const names = [...new Set([...pa.keys(), ...pb.keys()])].sort();
        const rows = names.filter((n) => pa.get(n) !== pb.get(n)).map((n) => {
          const kind = !pa.has(n) ? 'added' : !pb.has(n) ? 'removed' : 'changed';
          return el('tr', { class: kind }, el('td', {}, n), el('td', {}, pa.get(n) || ''), el('td', {}, pb.get(n) || ''), el('td', {}, kind));
        });
        shown = rows.length === 0 ? el('p', {}, 'Same packages.') :
          el('table', { id: 'diff-table' }, el('tr', {}, ['package', `${a.name}:${a.version}`, `${b.name}:${b.version}`, ''].map((t) => el('th', {}, t))), rows);
        if ($('diff')) $('diff').replaceChildren(shown);
      };
      rendered('images', el('div', {}, el('h1', {}, 'Images'),
        el('table', { id: 'images' }, el('tr', {}, ['name', 'version', 'id', 'created', 'hosts', 'state', 'kernel'].map((t) => el('th', {}, t))),
          all.map((x) => el('tr', {}, el('td', {}, x.name), el('td', {}, x.version), el('td', {}, x.id.slice(0, 12)), el('td', {}, when(x.created)),
            el('td', { class: 'num' }, x.hosts !== undefined ? x.hosts : ''), el('td', {}, x.state + (x.state === 'replicating' ? ` (${x.copies}/${x.replicas})` : '')),
            el('td', {}, x.kernel_version || '')))),
        choice ? el('div', {}, el('h2', {}, 'Package diff'),
          el('div', { class: 'controls' }, pick('diff-a', 0), ' → ', pick('diff-b', 1), el('button', { id: 'btn-diff', onclick: () => diff().catch(showError) }, 'Compare')),
          el('div', { id: 'diff' }, shown)) : null));
    },
  };
};

// ---- instances ----

views.instances = () => ({
  async refresh() {
    const r = await fetch('/v1/instances').then((x) => x.json());
    rendered('instances', el('div', {}, el('h1', {}, 'Server instances'),
      el('p', {}, 'This page talks to ', el('b', {}, r.instance), '; the coordinator runs on ',
        el('b', { id: 'leader' }, (r.leader && r.leader.instance) || 'no instance (no leader now)'), '.'),
      el('table', { id: 'instances' }, el('tr', {}, ['name', 'url', 'version', 'state', 'heartbeat', 'started', 'leads'].map((t) => el('th', {}, t))),
        r.instances.map((x) => el('tr', {}, el('td', {}, x.name), el('td', {}, x.url), el('td', {}, x.version), el('td', {}, x.state),
          el('td', {}, `${x.heartbeat_age_ms} ms ago`), el('td', {}, when(x.started)), el('td', {}, x.leader ? `yes (epoch ${x.epoch})` : ''))))));
  },
});

// Instances change without an audit entry: that view polls.
setInterval(() => { if (S.view && document.body.dataset.view === 'instances') scheduleRefresh(); }, 5000);
// A bake's time left counts down without an entry either.
setInterval(() => { if (S.view && document.body.dataset.view === 'pipeline' && $('pipeline-bake')) scheduleRefresh(); }, 10000);

// ---- start ----

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-error').textContent = '';
    try { await login($('token').value.trim()); } catch (e) { $('login-error').textContent = 'cannot log in: ' + e.message; }
  });
  $('logout').addEventListener('click', () => logout(''));
  if (S.token) login(S.token).catch((e) => logout('cannot log in: ' + e.message));
  else logout('');
});
