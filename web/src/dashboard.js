/*
 * dashboard.js — the live dashboard (appended to uPlot's IIFE build, which
 * defines the global `uPlot`, by the Makefile).
 *
 * Every REFRESH_MS it reads GET /api/performance/metrics (admin token:
 * from /dashboard#token=…, or typed into the form, kept in sessionStorage)
 * and appends one point to each chart. The summary's counters are totals
 * since the server started, so rates and ratios are the differences
 * between two reads divided by the time between them: requests/s, errors/s,
 * requests shed under load/s,
 * hit ratio per tier over the interval (the object cache, under the
 * response cache, as a third series), database ms per second. A restart
 * (a counter going down) starts the series afresh. The replicas table
 * shows each replica of db.replicas as the summary reports it.
 *
 * Each chart's figure carries data-max (the largest value drawn) and
 * data-points, and each Web Vitals card data-p75, so a test (or a person
 * with devtools) can read what is drawn without parsing a canvas.
 */
(function () {
  'use strict';
  var REFRESH_MS = 2000;
  var KEEP = 180; /* points: 6 minutes */
  var ENDPOINT = '/api/performance/metrics';
  var VITALS = ['LCP', 'INP', 'CLS', 'FCP', 'TTFB'];
  var COLORS = { good: '#0cce6b', ni: '#ffa400', poor: '#ff4e42', blue: '#4ea1ff', violet: '#b48cff', grey: '#8a99a8' };

  var $ = function (id) { return document.getElementById(id); };
  var token = null;
  var previous = null; /* the last summary read, with its time */
  var charts = {};
  var series = {}; /* chart id → [xs, ys…] */

  /* ---- the token ---- */

  function readToken() {
    var m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (m) {
      token = decodeURIComponent(m[1]);
      try { sessionStorage.setItem('strata-token', token); } catch (e) {}
      history.replaceState(null, '', location.pathname + location.search);
      return;
    }
    try { token = sessionStorage.getItem('strata-token'); } catch (e) {}
  }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    token = $('token').value.trim();
    try { sessionStorage.setItem('strata-token', token); } catch (e) {}
    $('login').hidden = true;
    refresh();
  });

  /* ---- formatting ---- */

  function fixed(v, digits) { return v === null || v === undefined || !isFinite(v) ? '–' : v.toFixed(digits); }
  function ms(v) { return v === null || v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
  function vitalText(name, v) { return v === null || v === undefined ? '–' : name === 'CLS' ? v.toFixed(3) : v.toFixed(0); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function bandOf(name, v, t) {
    if (v === null || v === undefined || !t) return '';
    return v <= t.good ? 'good' : v <= t.poor ? 'needs-improvement' : 'poor';
  }

  /* ---- charts ---- */

  function width(fig) { return Math.max(280, fig.clientWidth - 20); }
  function vitalWidth(card) { return Math.max(160, card.clientWidth - 26); }

  function makeChart(id, lines, opts) {
    var fig = $(id);
    var s = [{}];
    lines.forEach(function (l) {
      s.push({ label: l.label, stroke: l.color, width: 2, fill: l.fill, spanGaps: false,
               value: function (u, v) { return v === null ? '–' : (l.format || ms)(v) + (l.unit || ''); } });
    });
    var axisStyle = { stroke: COLORS.grey, grid: { stroke: '#27313d', width: 1 }, ticks: { stroke: '#27313d' } };
    var o = {
      width: width(fig),
      height: 190,
      series: s,
      /* at least a minute wide, so the first points do not get a sub-second axis */
      scales: { x: { time: true, range: function (u, min, max) { return [Math.min(min, max - 60), max]; } },
                y: { range: opts && opts.range } },
      axes: [axisStyle, Object.assign({ size: 52, values: opts && opts.yValues }, axisStyle)],
      legend: { show: !(opts && opts.small) },
      cursor: { drag: { x: false, y: false } },
      hooks: { drawClear: opts && opts.drawClear ? [opts.drawClear] : [] },
    };
    series[id] = [[]].concat(lines.map(function () { return []; }));
    charts[id] = new uPlot(o, series[id], fig);
  }

  function push(id, x, values) {
    var d = series[id];
    d[0].push(x);
    values.forEach(function (v, i) { d[i + 1].push(v === undefined ? null : v); });
    if (d[0].length > KEEP) d.forEach(function (a) { a.shift(); });
    charts[id].setData(d);
    var max = 0;
    for (var i = 1; i < d.length; i++)
      for (var j = 0; j < d[i].length; j++) if (d[i][j] !== null && d[i][j] > max) max = d[i][j];
    var fig = $(id);
    fig.dataset.max = String(max);
    fig.dataset.points = String(d[0].length);
  }

  /* Web Vitals charts: the good / needs-improvement / poor bands behind the line. */
  function bands(t) {
    return function (u) {
      var ctx = u.ctx, left = u.bbox.left, w = u.bbox.width, top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
      var y = function (v) { return Math.max(top, Math.min(bottom, u.valToPos(v, 'y', true))); };
      var yGood = y(t.good), yPoor = y(t.poor);
      ctx.save();
      ctx.fillStyle = 'rgba(12, 206, 107, 0.13)';
      ctx.fillRect(left, yGood, w, bottom - yGood);
      ctx.fillStyle = 'rgba(255, 164, 0, 0.13)';
      ctx.fillRect(left, yPoor, w, yGood - yPoor);
      ctx.fillStyle = 'rgba(255, 78, 66, 0.13)';
      ctx.fillRect(left, top, w, yPoor - top);
      ctx.restore();
    };
  }

  function vitalCard(name, unit, t) {
    var card = el('article', 'vital');
    card.id = 'vital-' + name;
    var head = el('header');
    var h = el('h3', '', name);
    h.appendChild(el('small', '', unit ? 'p75, ' + unit : 'p75'));
    head.appendChild(h);
    var p = el('span', 'p75', '–');
    head.appendChild(p);
    card.appendChild(head);
    card.appendChild(el('p', 'meta', 'no sample yet'));
    var band = el('div', 'band');
    var max = t.poor * 1.5;
    [['g', t.good], ['n', t.poor - t.good], ['p', max - t.poor]].forEach(function (b) {
      var i = el('i', b[0]);
      i.style.width = (100 * b[1] / max) + '%';
      band.appendChild(i);
    });
    var mark = el('span', 'mark');
    mark.hidden = true;
    band.appendChild(mark);
    card.appendChild(band);
    var fig = el('figure', 'chart vital-chart');
    fig.id = 'chart-vital-' + name;
    fig.style.minHeight = '0';
    fig.style.border = '0';
    fig.style.padding = '0';
    card.appendChild(fig);
    $('vitals').appendChild(card);
    var fmt = function (v) { return vitalText(name, v); };
    makeChart(fig.id, [{ label: name + ' p75', color: '#ffffff', unit: unit ? ' ' + unit : '', format: fmt }], {
      drawClear: bands(t),
      range: function (u, min, mx) { return [0, Math.max(mx || 0, t.poor) * 1.25]; },
      small: true,
    });
    charts[fig.id].setSize({ width: vitalWidth(card), height: 130 });
  }

  function setupVitals(wv) {
    if ($('vitals').childElementCount) return;
    VITALS.forEach(function (name) {
      var m = wv.metrics[name];
      vitalCard(name, m.unit, m.thresholds);
    });
  }

  function updateVitals(x, wv) {
    setupVitals(wv);
    VITALS.forEach(function (name) {
      var m = wv.metrics[name], t = m.thresholds;
      var card = $('vital-' + name);
      var rating = m.rating || '';
      card.className = 'vital ' + rating;
      var p = card.querySelector('.p75');
      p.textContent = vitalText(name, m.p75);
      p.className = 'p75 ' + (rating ? rating + '-text' : '');
      if (m.unit) p.appendChild(el('small', '', ' ' + m.unit));
      card.dataset.p75 = m.p75 === null ? '' : String(m.p75);
      card.querySelector('.meta').textContent = m.count
        ? m.count + (m.count === 1 ? ' sample' : ' samples') + ' · p50 ' + vitalText(name, m.p50) + ' · p95 ' + vitalText(name, m.p95) + ' · ' + rating
        : 'no sample yet';
      var mark = card.querySelector('.mark');
      if (m.p75 !== null) {
        mark.hidden = false;
        mark.style.left = Math.min(99, 100 * m.p75 / (t.poor * 1.5)) + '%';
      }
      push('chart-vital-' + name, x, [m.p75]);
    });
  }

  /* ---- tables and lists ---- */

  function fillTable(id, rows) {
    var body = $(id).tBodies[0];
    body.textContent = '';
    rows.forEach(function (cells) {
      var tr = el('tr');
      cells.forEach(function (c) {
        var td = el('td', c.cls || '');
        if (c.band) td.appendChild(el('span', c.band, c.text));
        else td.textContent = c.text;
        if (c.title) td.title = c.title;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function routeRates(now, dt) {
    var before = {};
    if (previous && previous.data.api) previous.data.api.routes.forEach(function (r) { before[r.method + ' ' + r.route] = r.count; });
    return (now.api.routes || []).map(function (r) {
      var key = r.method + ' ' + r.route;
      var rate = dt > 0 && before[key] !== undefined && r.count >= before[key] ? (r.count - before[key]) / dt : null;
      return { r: r, key: key, rate: rate };
    }).sort(function (a, b) { return (b.rate || 0) - (a.rate || 0) || b.r.count - a.r.count; });
  }

  function updateTables(now, dt) {
    fillTable('routes', routeRates(now, dt).slice(0, 15).map(function (x) {
      var l = x.r.latency_ms || {};
      return [{ text: x.key, cls: 'text', title: x.key }, { text: fixed(x.rate, 1) }, { text: String(x.r.count) },
              { text: ms(l.p50) }, { text: ms(l.p95) }, { text: ms(l.p99) }, { text: String(x.r.errors || 0) }];
    }));
    var wv = now.web_vitals;
    if (!wv) return;
    fillTable('pages', (wv.pages || []).map(function (p) {
      return [{ text: p.page, cls: 'text', title: p.page }, { text: String(p.count) }].concat(VITALS.map(function (name) {
        var m = p.metrics[name];
        return { text: vitalText(name, m.p75), band: bandOf(name, m.p75, m.thresholds) };
      }));
    }));
    fillTable('recent', (wv.recent || []).map(function (s) {
      return [{ text: (s.at || '').slice(11, 19) }, { text: s.name }, { text: vitalText(s.name, s.value), band: s.rating },
              { text: s.page, cls: 'text', title: s.page }, { text: s.request_id || '–', cls: 'text' },
              { text: s.target || '', cls: 'text', title: s.target || '' }];
    }));
  }

  /* One row per replica; "usable" = up and within db.replica_max_lag_ms. */
  function updateReplicas(replicas, reads) {
    var rows = (replicas || []).map(function (r) {
      var state = !r.up ? 'down' : r.usable ? 'usable' : 'lagging';
      return [{ text: String(r.index) }, { text: r.url, cls: 'text', title: r.url },
              { text: state, band: r.up && r.usable ? 'good' : r.up ? 'needs-improvement' : 'poor' }, { text: r.replayed || '–' },
              { text: ms(1000 * r.lag_seconds) + ' ms' }, { text: String(r.lag_bytes) }, { text: String(r.reads) }];
    });
    if (!rows.length)
      rows = [[{ text: '–' }, { text: 'none: every read is the primary\'s' + (reads ? ' (' + reads.primary + ' reads)' : ''), cls: 'text' },
               { text: '' }, { text: '' }, { text: '' }, { text: '' }, { text: '' }]];
    fillTable('replicas', rows);
  }

  /* Versions and stored bytes per site, and the history cache's hit ratio
   * since the server started (rendered versions and diffs are immutable:
   * a lookup that missed once hits afterwards until evicted). */
  function updateHistory(history) {
    var c = history && history.cache;
    $('history-hits').textContent = c && c.hits + c.misses ? fixed(100 * c.hit_ratio, 1) + ' % of ' + (c.hits + c.misses) + ' lookups' : '–';
    var sites = (history && history.sites) || {};
    fillTable('history', Object.keys(sites).sort().map(function (name) {
      var s = sites[name];
      return [{ text: name, cls: 'text' }, { text: String(s.versions) }, { text: fixed(s.stored_bytes / 1048576, 1) + ' MB' }];
    }));
  }

  function updateAlerts(alerts) {
    var list = $('alerts');
    list.textContent = '';
    if (!alerts || !alerts.length) {
      list.appendChild(el('li', 'none', 'No alert is raised.'));
      return;
    }
    alerts.forEach(function (a) {
      var text = (a.quantity || a.id || 'alert') + ': ' + fixed(a.value, 3) + ' against a budget of ' + fixed(a.budget, 3);
      if (a.since) text += ' · since ' + String(a.since).replace('T', ' ').slice(0, 19);
      list.appendChild(el('li', String(a.state || 'firing').toLowerCase(), text));
    });
  }

  /* ---- one refresh ---- */

  function delta(now, before, path) {
    var a = now, b = before;
    for (var i = 0; i < path.length; i++) {
      a = a && a[path[i]];
      b = b && b[path[i]];
    }
    return typeof a === 'number' && typeof b === 'number' && a >= b ? a - b : null;
  }

  function ratio(hits, lookups) { return hits === null || !lookups ? null : 100 * hits / lookups; }

  function update(data, t) {
    var x = t / 1000;
    var dt = previous ? (t - previous.t) / 1000 : 0;
    var before = previous ? previous.data : null;
    var api = data.api || {}, lat = api.latency_ms || {}, cache = data.cache || {}, db = data.db || {};
    var rps = before && dt > 0 ? delta(data, before, ['api', 'requests']) : null;
    var eps = before && dt > 0 ? delta(data, before, ['api', 'errors']) : null;
    var sps = before && dt > 0 ? delta(data, before, ['shed', 'answered']) : null;
    if (rps !== null) rps /= dt;
    if (eps !== null) eps /= dt;
    if (sps !== null) sps /= dt;
    push('chart-rps', x, [rps, eps, sps]);
    push('chart-latency', x, [lat.p50, lat.p95, lat.p99]);

    var l1 = null, l2 = null;
    if (before && cache.l1) {
      var h1 = delta(data, before, ['cache', 'l1', 'hits']), s1 = delta(data, before, ['cache', 'l1', 'stale_hits']);
      var m1 = delta(data, before, ['cache', 'l1', 'misses']);
      if (h1 !== null && m1 !== null) l1 = ratio(h1 + (s1 || 0), h1 + (s1 || 0) + m1);
    }
    if (before && cache.l2) {
      var h2 = delta(data, before, ['cache', 'l2', 'hits']), k2 = delta(data, before, ['cache', 'l2', 'lookups']);
      l2 = ratio(h2, k2);
    }
    var objects = data.objects, oh = null;
    if (before && objects && objects.enabled) {
      var ho = delta(data, before, ['objects', 'hits']), mo = delta(data, before, ['objects', 'misses']);
      if (ho !== null && mo !== null) oh = ratio(ho, ho + mo);
    }
    push('chart-hits', x, [l1, l2, oh]);

    var dbt = before && dt > 0 ? delta(data, before, ['db', 'time_ms']) : null;
    var dbq = before ? delta(data, before, ['db', 'queries']) : null;
    push('chart-db', x, [dbt === null ? null : dbt / dt, dbq ? dbt / dbq : null]);

    $('t-rps').textContent = fixed(rps, 1);
    $('t-p95').textContent = ms(lat.p95);
    $('t-err').textContent = fixed(100 * (api.error_rate || 0), 2);
    $('t-shed').textContent = fixed(sps, 1);
    $('tile-shed').className = sps ? 'tile shedding' : 'tile';
    $('t-hit').textContent = cache.l1 ? fixed(100 * cache.l1.hit_ratio, 1) : '–';
    $('t-objects').textContent = objects && objects.enabled ? fixed(100 * objects.hit_ratio, 1) : '–';
    $('t-objects').title = objects && objects.enabled
      ? objects.entries + ' rows, ' + fixed(objects.bytes / 1048576, 1) + ' of ' + fixed(objects.max_bytes / 1048576, 0) +
        ' MB, ' + objects.evictions + ' evicted'
      : 'cache.objects is off';
    $('t-db').textContent = dbt === null ? '–' : fixed(dbt / dt, 1);
    $('t-rss').textContent = data.memory ? fixed(data.memory.rss_bytes / 1048576, 0) : '–';

    if (data.web_vitals) updateVitals(x, data.web_vitals);
    updateAlerts(data.alerts);
    updateTables(data, dt);
    updateReplicas(data.replicas, data.db_reads);
    updateHistory(data.history);
    var up = data.uptime_s || 0;
    $('status').className = 'status';
    $('status').textContent = 'updated ' + new Date(t).toLocaleTimeString() + ' · up ' +
      (up >= 3600 ? Math.floor(up / 3600) + ' h ' : '') + Math.floor(up % 3600 / 60) + ' min · every ' + REFRESH_MS / 1000 + ' s';
  }

  function refresh() {
    var headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    fetch(ENDPOINT, { headers: headers, cache: 'no-store', credentials: 'omit' }).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        $('login').hidden = false;
        $('status').className = 'status error';
        $('status').textContent = 'an admin token is needed (' + r.status + ')';
        return null;
      }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (data) {
      if (!data) return;
      var t = Date.now();
      if (previous && data.api && previous.data.api && data.api.requests < previous.data.api.requests) previous = null;
      update(data, t);
      previous = { data: data, t: t };
    }).catch(function (e) {
      $('status').className = 'status error';
      $('status').textContent = 'cannot read ' + ENDPOINT + ': ' + e.message;
    });
  }

  /* ---- start ---- */

  readToken();
  makeChart('chart-rps', [
    { label: 'requests/s', color: COLORS.blue, fill: 'rgba(78, 161, 255, 0.12)', format: function (v) { return v.toFixed(1); } },
    { label: '5xx/s', color: COLORS.poor, format: function (v) { return v.toFixed(2); } },
    { label: 'shed/s', color: COLORS.ni, format: function (v) { return v.toFixed(2); } },
  ]);
  makeChart('chart-latency', [
    { label: 'p50', color: COLORS.good, unit: ' ms' },
    { label: 'p95', color: COLORS.ni, unit: ' ms' },
    { label: 'p99', color: COLORS.poor, unit: ' ms' },
  ]);
  makeChart('chart-hits', [
    { label: 'L1', color: COLORS.blue, unit: ' %', format: function (v) { return v.toFixed(1); } },
    { label: 'L2', color: COLORS.violet, unit: ' %', format: function (v) { return v.toFixed(1); } },
    { label: 'Objects', color: COLORS.good, unit: ' %', format: function (v) { return v.toFixed(1); } },
  ], { range: function () { return [0, 100]; } });
  makeChart('chart-db', [
    { label: 'ms per second', color: COLORS.blue, fill: 'rgba(78, 161, 255, 0.12)' },
    { label: 'mean ms per query', color: COLORS.violet },
  ]);
  addEventListener('resize', function () {
    Object.keys(charts).forEach(function (id) {
      var fig = $(id);
      var vital = id.indexOf('chart-vital-') === 0;
      charts[id].setSize({ width: vital ? vitalWidth(fig.parentNode) : width(fig), height: vital ? 130 : 190 });
    });
  });
  window.strataDashboard = { charts: charts, series: series };
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
