// eventrelay live ops page: polls the JSON API every sample period, redraws
// the counters, the two charts and the recent-events table, and looks up one
// event on demand. No framework and no build. Data only ever reaches the page
// through textContent and attributes, never as markup.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const every = Math.max(200, Number(document.body.dataset.sampleEveryMs) || 1000);
  const TERMINAL = new Set(['delivered', 'failed', 'dead_lettered']);
  const COLORS = {
    received: '#2563eb', delivered: '#16a34a', limit: '#dc2626', rate: '#0891b2',
    backlog: '#7c3aed', age: '#ea580c', grid: '#eef0f3', axis: '#687385',
  };

  const state = {
    overview: null,
    filter: '',
    lookup: '',          // the id on show
    lookupDone: true,    // its record is terminal: no need to refresh it
    lookupSeq: 0,        // drops answers to superseded lookups
  };

  // ---- small helpers -------------------------------------------------------

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  function clock(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d) || d.getFullYear() < 2) return '—';
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function stamp(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d) || d.getFullYear() < 2) return '—';
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
      clock(iso) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }

  const label = (s) => String(s).replace(/_/g, '-');
  // human mirrors the page's Go formatting of longer durations: "15m",
  // "1m30s", "45s"; under a second as millis.
  function human(ns) {
    if (!(ns >= 1e9)) return millis(ns);
    const s = Math.round(ns / 1e9);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + 'h' : '') + (m ? m + 'm' : '') + (sec ? sec + 's' : '');
  }
  // millis mirrors the page's Go formatting: "14 ms", or "10.0 s" from a second on.
  const millis = (ns) => (ns >= 1e9 ? (ns / 1e9).toFixed(1) + ' s' : Math.round((ns || 0) / 1e6) + ' ms');
  const safeURL = (u) => (typeof u === 'string' && /^https?:\/\//i.test(u) ? u : '');
  // CSS class tokens from data: keep only what a class name may hold.
  const token = (s) => String(s).replace(/[^a-z0-9_-]/gi, '');

  async function getJSON(url) {
    const res = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const err = new Error((body && (body.detail || body.title)) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function setConn(ok, why) {
    const pill = $('conn');
    pill.className = 'pill ' + (ok ? 'pill-live' : 'pill-down');
    pill.textContent = ok ? 'live' : 'offline';
    pill.title = ok ? '' : String(why || '');
  }

  // ---- the plotter ---------------------------------------------------------

  // niceStep picks 1, 2 or 5 × 10^k so that about four grid lines cover max.
  function niceStep(max) {
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) {
      if (raw <= m * mag) return m * mag;
    }
    return 10 * mag;
  }

  function fmtTick(v) {
    if (v >= 10000) return (v / 1000).toFixed(0) + 'k';
    if (v >= 1000) return (v / 1000).toFixed(1) + 'k';
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  // plot draws series against time on a canvas. opts:
  //   times:  sample times (ms since epoch), oldest first
  //   series: [{values, color, dash, axis: 'left'|'right'}]
  //   right:  true when some series use a right axis
  //   empty:  text to show instead of lines (no data, or none to show)
  // It records the number of points drawn in the canvas's data-points.
  function plot(canvas, opts) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';

    const box = { l: 44, r: opts.right ? 44 : 12, t: 8, b: 20 };
    const pw = w - box.l - box.r, ph = h - box.t - box.b;
    const n = opts.times.length;

    const scale = (axis) => {
      let max = 0;
      for (const s of opts.series) {
        if ((s.axis || 'left') !== axis) continue;
        for (const v of s.values) if (v > max) max = v;
      }
      max = Math.max(max * 1.15, axis === 'left' ? (opts.minLeft || 1) : 1);
      const step = niceStep(max);
      return { max: Math.ceil(max / step) * step, step };
    };
    const left = scale('left');
    const right = opts.right ? scale('right') : null;

    // grid and y labels
    g.lineWidth = 1;
    g.textBaseline = 'middle';
    for (let v = 0; v <= left.max + 1e-9; v += left.step) {
      const y = Math.round(box.t + ph - (v / left.max) * ph) + 0.5;
      g.strokeStyle = COLORS.grid;
      g.beginPath(); g.moveTo(box.l, y); g.lineTo(box.l + pw, y); g.stroke();
      g.fillStyle = COLORS.axis;
      g.textAlign = 'right';
      g.fillText(fmtTick(v), box.l - 6, y);
      if (right) {
        g.textAlign = 'left';
        g.fillText(fmtTick((v / left.max) * right.max), box.l + pw + 6, y);
      }
    }
    g.strokeStyle = '#cbd5e1';
    g.beginPath(); g.moveTo(box.l, box.t + ph + 0.5); g.lineTo(box.l + pw, box.t + ph + 0.5); g.stroke();

    if (n === 0 || opts.empty) {
      g.fillStyle = COLORS.axis;
      g.textAlign = 'center';
      g.fillText(opts.empty || 'waiting for samples…', box.l + pw / 2, box.t + ph / 2);
      canvas.dataset.points = '0';
      return;
    }

    // x: a window of at least 60 samples ending at the newest one, so the
    // chart fills from the right and then scrolls
    const t1 = opts.times[n - 1];
    const span = Math.max(60 * every, t1 - opts.times[0]);
    const t0 = t1 - span;
    const x = (t) => box.l + ((t - t0) / span) * pw;

    g.textBaseline = 'top';
    g.fillStyle = COLORS.axis;
    g.textAlign = 'left';
    g.fillText('−' + Math.round(span / 1000) + ' s', box.l, box.t + ph + 5);
    g.textAlign = 'right';
    g.fillText('now', box.l + pw, box.t + ph + 5);

    g.save();
    g.beginPath(); g.rect(box.l, box.t - 2, pw, ph + 4); g.clip();
    for (const s of opts.series) {
      const sc = (s.axis || 'left') === 'left' ? left : right;
      const y = (v) => box.t + ph - (v / sc.max) * ph;
      g.strokeStyle = s.color;
      g.lineWidth = s.dash ? 1.5 : 2;
      g.lineJoin = 'round';
      g.setLineDash(s.dash ? (s.dots ? [2, 3] : [6, 4]) : []);
      g.beginPath();
      // a reference line (the limit) spans the whole window
      g.moveTo(s.extend ? box.l : x(opts.times[0]), y(s.values[0]));
      s.values.forEach((v, i) => g.lineTo(x(opts.times[i]), y(v)));
      if (n === 1 && !s.extend) g.lineTo(box.l + pw, y(s.values[0]));
      g.stroke();
      if (s.tag) {
        g.fillStyle = s.color;
        g.textAlign = 'left';
        g.textBaseline = 'bottom';
        g.fillText(s.tag, box.l + 4, y(s.values[0]) - 3);
      }
    }
    g.setLineDash([]);
    g.restore();
    canvas.dataset.points = String(n);
    canvas.dataset.last = String(t1);
  }

  function drawCharts() {
    const ov = state.overview;
    if (!ov) return;
    const smp = ov.samples || [];
    const times = smp.map((s) => Date.parse(s.at));
    const series = [
      { values: smp.map((s) => s.received_per_s), color: COLORS.received },
      { values: smp.map((s) => s.delivered_per_s), color: COLORS.delivered },
    ];
    const limits = smp.map((s) => s.limit);
    if (limits.some((v) => v > 0)) {
      const now = limits[limits.length - 1];
      series.unshift({ values: limits, color: COLORS.limit, dash: true, extend: true,
        tag: now > 0 ? 'limit ' + (+now.toPrecision(4)) + '/s' : '' });
    }
    // The queue's live dispatch rate: the governor may hold it below the
    // limit during a 429 storm.
    const rates = smp.map((s) => s.dispatch_rate || 0);
    if (rates.some((v) => v > 0)) {
      series.push({ values: rates, color: COLORS.rate, dash: true, dots: true });
    }
    plot($('chart-rate'), { times, series });

    plot($('chart-backlog'), {
      times,
      right: true,
      empty: ov.has_queue ? '' : 'the queue reports no stats',
      series: [
        { values: smp.map((s) => s.backlog), color: COLORS.backlog },
        { values: smp.map((s) => s.oldest_age_s), color: COLORS.age, axis: 'right' },
      ],
    });
  }

  // ---- overview and table --------------------------------------------------

  function setCount(id, n) {
    const e = $(id);
    e.textContent = String(n);
    e.classList.toggle('nonzero', n > 0);
  }

  function renderOverview(ov) {
    state.overview = ov;
    const t = ov.totals || {};
    setCount('total-received', ov.received || 0);
    setCount('total-delivered', t.delivered || 0);
    setCount('total-failed', t.failed || 0);
    setCount('total-dead', t.dead_lettered || 0);
    $('limit').textContent = ov.limit > 0 ? (+ov.limit.toPrecision(4)) + '/s' : '—';
    renderRate(ov.rate, ov.shards);
    renderShards(ov.shards);
    renderReconcile(ov.reconcile);
    $('updated').textContent = clock(ov.totals_at);

    const err = $('sample-error');
    err.hidden = !ov.error;
    err.textContent = ov.error || '';

    const smp = ov.samples || [];
    const last = smp.length ? smp[smp.length - 1] : null;
    if (!ov.has_queue) {
      $('backlog').textContent = 'n/a';
      $('oldest').textContent = 'n/a';
      $('backlog-now').textContent = 'the queue reports no stats';
    } else if (last) {
      $('backlog').textContent = String(last.backlog);
      $('oldest').textContent = last.oldest_age_s.toFixed(1) + ' s';
      $('backlog-now').textContent = 'backlog ' + last.backlog + ' · in flight ' + last.in_flight +
        ' · oldest ' + last.oldest_age_s.toFixed(1) + ' s';
    }
    if (last) {
      $('rate-now').textContent = 'received ' + last.received_per_s.toFixed(1) + '/s · delivered ' +
        last.delivered_per_s.toFixed(1) + '/s' + (last.limit > 0 ? ' · limit ' + (+last.limit.toPrecision(4)) + '/s' : '') +
        (last.dispatch_rate > 0 ? ' · queue rate ' + (+last.dispatch_rate.toPrecision(4)) + '/s' : '');
    }
    drawCharts();
  }

  // renderRate shows the queue's live rate beside its ceiling, its burst
  // (over shards, the sum of theirs), and the governor's banner while it
  // holds the queue below the ceiling.
  function renderRate(r, shards) {
    const banner = $('rate-banner');
    banner.hidden = !(r && r.banner);
    banner.textContent = (r && r.banner) || '';
    $('rate-card').hidden = !r;
    $('key-rate').hidden = !r;
    if (!r) return;
    // An open breaker holds the queue at the floor: the card turns red;
    // holding below the ceiling or probing (half-open) turns it amber.
    const breaker = r.breaker || 'closed';
    $('rate-card').classList.toggle('bad', breaker === 'open');
    $('rate-card').classList.toggle('warn', breaker !== 'open' && (!!r.holding || breaker === 'half_open'));
    $('breaker-state').className = 'breaker breaker-' + token(breaker);
    $('breaker-state').textContent = label(breaker);
    $('breaker-since').textContent = r.breaker_since ? ' since ' + clock(r.breaker_since) : '';
    $('queue-rate').textContent = r.live > 0 ? (+r.live.toPrecision(4)) + '/s' : '—';
    $('queue-rate-sub').textContent = 'ceiling ' + (+(r.ceiling || 0).toPrecision(4)) + '/s · governor ' +
      r.governor + (r.paused ? ' · paused' : '');
    const n = (shards || []).length;
    $('queue-burst').textContent = r.burst > 0
      ? 'burst ' + r.burst + (n > 0 ? ' over ' + n + ' shards' : '') +
        ' · first second after idle ≤ ' + (+r.first_second.toPrecision(4)) + ' tasks'
      : 'burst unknown';
  }

  // renderShards lists each shard's live rate, burst and backlog in the
  // rate card; hidden when the queue has one shard.
  function renderShards(shards) {
    const list = shards || [];
    $('shards').hidden = list.length === 0;
    const rows = list.map((s) => {
      const tr = el('tr');
      const name = el('td', 'mono', s.name);
      name.title = s.name;
      tr.append(name);
      if (s.error) {
        const td = el('td', '', 'unreadable');
        td.colSpan = 3;
        td.title = s.error;
        tr.append(td);
      } else {
        tr.append(el('td', '', (+(s.rate || 0).toPrecision(4)) + '/s'), el('td', '', s.burst > 0 ? String(s.burst) : 'unknown'),
          el('td', '', s.paused ? 'paused' : 'no'));
      }
      if (s.stats_error) {
        const td = el('td', '', 'unreadable');
        td.colSpan = 3;
        td.title = s.stats_error;
        tr.append(td);
      } else {
        tr.append(el('td', '', String(s.backlog || 0)), el('td', '', String(s.in_flight || 0)),
          el('td', '', (s.oldest_age_s || 0).toFixed(1) + ' s'));
      }
      return tr;
    });
    document.querySelector('#shards tbody').replaceChildren(...rows);
  }

  // renderReconcile shows the reconciler's last run: when, how long, with
  // which grace and policy, its counts by action and its first findings.
  function renderReconcile(c) {
    $('reconcile').hidden = !c;
    if (!c) return;
    $('rc-at').textContent = c.ran ? clock(c.finished) : 'not yet';
    $('rc-took').textContent = c.ran ? millis(c.took_ns) : '—';
    $('rc-grace').textContent = c.ran ? human(c.grace_ns) : '—';
    $('rc-policy').textContent = c.ran ? label(c.policy) + (c.dry_run ? ' (dry run)' : '') : '—';
    $('rc-read').textContent = String(c.read || 0);
    for (const [action, n] of Object.entries(c.counts || {})) {
      const dd = $('rc-count-' + token(action));
      if (!dd) continue;
      dd.textContent = String(n);
      dd.className = n > 0 ? 'nonzero rc-' + token(action) : '';
    }
    const err = $('rc-error');
    err.hidden = !c.error;
    err.textContent = c.error || '';

    const rows = [];
    for (const f of c.findings || []) {
      const tr = el('tr');
      tr.dataset.eventId = f.event_id;
      const idCell = el('td', 'id');
      const a = el('a', '', f.event_id);
      a.href = '?event=' + encodeURIComponent(f.event_id);
      a.title = f.event_id;
      idCell.append(a);
      const missing = el('td', 'mono task', f.missing_task);
      missing.title = f.missing_task || '';
      const next = el('td', 'mono task', f.new_task || '');
      if (f.new_task) next.title = f.new_task;
      const act = el('td');
      act.append(el('span', 'badge rc-' + token(f.action), label(f.action)));
      const why = el('td', 'why', f.why);
      why.title = f.why + (f.error ? ' (' + f.error + ')' : '');
      if (f.error) why.append(' ', el('span', 'muted', '(' + f.error + ')'));
      tr.append(idCell, missing, next, act, why);
      rows.push(tr);
    }
    if (rows.length === 0) {
      const tr = el('tr', 'empty');
      const td = el('td', '', c.ran ? 'The last run found no record without a task.' : 'The reconciler has not run yet.');
      td.colSpan = 5;
      tr.append(td);
      rows.push(tr);
    }
    document.querySelector('#findings tbody').replaceChildren(...rows);
    const shown = (c.findings || []).length;
    $('rc-more').hidden = !(c.total > shown);
    $('rc-more').textContent = 'showing ' + shown + ' of ' + c.total + ' findings';
  }

  function renderEvents(list) {
    const rows = [];
    for (const ev of list.events || []) {
      const tr = el('tr');
      tr.dataset.eventId = ev.event_id;

      const idCell = el('td', 'id');
      const a = el('a', '', ev.event_id);
      a.href = '?event=' + encodeURIComponent(ev.event_id);
      a.title = ev.event_id;
      idCell.append(a);

      const st = el('td');
      st.append(el('span', 'badge st-' + token(ev.status), label(ev.status)));

      const recv = el('td');
      const time = el('time', '', clock(ev.received_at));
      time.dateTime = ev.received_at;
      recv.append(time);

      const oc = el('td', 'outcome', ev.last_outcome ? label(ev.last_outcome) : '');
      if (ev.reason) {
        oc.append(' ', el('span', 'muted', '(' + ev.reason + ')'));
        oc.title = ev.reason;
      }

      tr.append(idCell, st, el('td', 'name', ev.name), recv, el('td', 'num', ev.attempts), oc);
      rows.push(tr);
    }
    if (rows.length === 0) {
      const tr = el('tr', 'empty');
      const td = el('td', '', list.status ? 'No ' + label(list.status) + ' events.' : 'No events yet.');
      td.colSpan = 6;
      tr.append(td);
      rows.push(tr);
    }
    document.querySelector('#events tbody').replaceChildren(...rows);
  }

  // ---- one event -----------------------------------------------------------

  function renderDetail(d) {
    const out = [];
    const r = d.record;

    const facts = el('dl', 'facts');
    const fact = (name, ...value) => {
      const dd = el('dd');
      dd.append(...value);
      facts.append(el('dt', '', name), dd);
      return dd;
    };
    fact('Event', r.event_id).className = 'mono';
    const badge = el('span', 'badge st-' + token(r.status), label(r.status));
    if (r.reason) fact('Status', badge, ' ', el('span', 'muted', r.reason));
    else fact('Status', badge);
    fact('Name', (r.event && r.event.name) || '');
    if (r.trace_id) {
      const url = safeURL(d.trace_url);
      let v = r.trace_id;
      if (url) {
        v = el('a', '', r.trace_id);
        v.href = url;
        v.target = '_blank';
        v.rel = 'noopener noreferrer';
      }
      fact('Trace', v).className = 'mono';
    }
    out.push(facts);

    out.push(el('h3', '', 'Timeline'));
    const ol = el('ol', 'timeline');
    ol.id = 'timeline';
    for (const e of d.timeline || []) {
      const li = el('li', 'tl tl-' + token(e.kind) + (e.outcome ? ' oc-' + token(e.outcome) : ''));
      const time = el('time', '', stamp(e.at));
      time.dateTime = e.at;
      li.append(time);
      const attempt = e.kind === 'attempt';
      li.append(el('span', 'step', attempt ? 'attempt ' + e.attempt : label(e.kind)));
      if (e.outcome) li.append(el('span', 'badge oc-' + token(e.outcome), label(e.outcome)));
      let detail = e.detail || '';
      if (attempt) {
        detail = (e.http_status ? 'HTTP ' + e.http_status + ' · ' : '') + millis(e.duration_ns) +
          (e.error ? ' · ' + e.error : '');
      }
      if (detail) li.append(el('span', 'detail', detail));
      ol.append(li);
    }
    out.push(ol);

    if (d.spans !== null && d.spans !== undefined) {
      out.push(el('h3', '', 'Spans'));
      if (d.spans_error) out.push(el('p', 'notice', d.spans_error));
      if (d.spans.length === 0) {
        out.push(el('p', 'muted', 'No spans recorded for this trace.'));
      } else {
        const ul = el('ul', 'spans');
        ul.id = 'spans';
        for (const s of d.spans) {
          const isErr = /^error/.test(s.status || '');
          const li = el('li', 'depth-' + Math.min(8, s.depth | 0) + (isErr ? ' span-error' : ''));
          li.dataset.depth = String(s.depth | 0);
          li.append(el('span', 'span-name', s.name));
          if (s.service) li.append(el('span', 'span-svc', s.service));
          li.append(el('span', 'span-dur', millis(s.duration_ns)));
          if (isErr) li.append(el('span', 'span-status', s.status));
          const attrs = Object.keys(s.attributes || {}).sort().map((k) => k + '=' + s.attributes[k]);
          if (attrs.length) li.title = attrs.join('\n');
          ul.append(li);
        }
        out.push(ul);
      }
    }
    return out;
  }

  async function lookup(id, fromUser) {
    const seq = ++state.lookupSeq;
    const box = $('lookup-result');
    try {
      const d = await getJSON('api/events/' + encodeURIComponent(id));
      if (seq !== state.lookupSeq) return;
      state.lookup = id;
      state.lookupDone = TERMINAL.has(d.record.status);
      box.replaceChildren(...renderDetail(d));
    } catch (e) {
      if (seq !== state.lookupSeq) return;
      state.lookup = '';
      state.lookupDone = true;
      const msg = e.status === 404 ? 'No event with id “' + id + '”.' : 'Lookup failed: ' + e.message;
      box.replaceChildren(el('p', 'notice', msg));
    }
    if (fromUser) history.replaceState(null, '', '?event=' + encodeURIComponent(id));
  }

  // ---- wiring --------------------------------------------------------------

  const eventsURL = () =>
    'api/events?limit=20' + (state.filter ? '&status=' + encodeURIComponent(state.filter) : '');

  async function tick() {
    if (document.hidden) { // no polling while nobody looks
      setTimeout(tick, every);
      return;
    }
    try {
      const [ov, list] = await Promise.all([getJSON('api/overview'), getJSON(eventsURL())]);
      renderOverview(ov);
      renderEvents(list);
      setConn(true);
      if (state.lookup && !state.lookupDone) await lookup(state.lookup, false);
    } catch (e) {
      setConn(false, e.message);
    } finally {
      setTimeout(tick, every);
    }
  }

  // refreshEvents reloads the table now (the filter changed), outside the
  // polling loop.
  async function refreshEvents() {
    try {
      renderEvents(await getJSON(eventsURL()));
    } catch (e) {
      setConn(false, e.message);
    }
  }

  $('lookup-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('lookup-id').value.trim();
    if (id) lookup(id, true);
  });

  // An event id in the recent events or the reconciler's findings shows
  // that event in the lookup panel.
  function lookupFromRow(ev) {
    const a = ev.target.closest('a');
    const tr = ev.target.closest('tr[data-event-id]');
    if (!a || !tr) return;
    ev.preventDefault();
    $('lookup-id').value = tr.dataset.eventId;
    lookup(tr.dataset.eventId, true);
    if (tr.closest('#findings')) $('lookup-h').scrollIntoView({ block: 'nearest' });
  }
  document.querySelector('#events tbody').addEventListener('click', lookupFromRow);
  const findings = document.querySelector('#findings tbody');
  if (findings) findings.addEventListener('click', lookupFromRow);

  $('status-filter').addEventListener('change', (ev) => {
    state.filter = ev.target.value;
    refreshEvents();
  });

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawCharts, 100);
  });


  const initial = $('lookup-id').value.trim();
  if (initial) lookup(initial, false);
  tick();
})();
