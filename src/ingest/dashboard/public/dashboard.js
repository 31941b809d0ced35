/*
 * The dashboard page: one card per stream, drawn from the `state` event of
 * /events and kept current by its `rows` events (Server-Sent Events, no
 * polling). Plain script, no build step; loaded with `defer` after uPlot
 * (https://github.com/leeoniya/uPlot). Everything from the server is put on
 * the page as text, never as HTML.
 *
 * The charts show the last hour from the live points, or any other range
 * (6 h, 24 h, 7 d, 30 d, two days) from GET /streams/<name>/series: a
 * min–max band with the mean as the line. The range is kept in the URL
 * (#range=7d, #from=2026-11-01&to=2026-11-23); one that includes now is
 * fetched again as rows arrive.
 */
'use strict';
(function () {
  var TOKEN_KEY = 'sensor-ingest.readToken';
  var CHART_HEIGHT = 150;
  var RETRY_MS = 2000;
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
  var PRESETS = { '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
  var PRESET_NAMES = { '1h': 'the last hour', '6h': 'the last 6 hours', '24h': 'the last 24 hours', '7d': 'the last 7 days', '30d': 'the last 30 days' };
  /** Buckets asked for: about one per 2 pixels of a wide chart. */
  var SERIES_POINTS = 600;
  /** A live range is fetched again at most this often, as rows arrive, and at least this often without. */
  var REFRESH_MIN_MS = 3000;
  var REFRESH_MAX_MS = 60000;

  var token = localStorage.getItem(TOKEN_KEY) || '';
  var source = null;
  var reconnectTimer = null;
  /** Server clock minus ours, so "quiet for" is right on a Pi whose clock is off. */
  var clockOffsetMs = 0;
  var windowMs = 3600 * 1000;
  var quietAfterMs = 120 * 1000;
  var cards = new Map();
  var dirty = new Set();
  var drawScheduled = false;

  var range = rangeFromHash();

  var cardsEl = document.getElementById('cards');
  var rangeEl = document.getElementById('range');
  var rangeForm = document.getElementById('range-dates');
  var rangeFrom = document.getElementById('range-from');
  var rangeTo = document.getElementById('range-to');
  var rangeNote = document.getElementById('range-note');
  var connectionEl = document.getElementById('connection');
  var tokenForm = document.getElementById('token-form');
  var tokenInput = document.getElementById('token');
  var tokenError = document.getElementById('token-error');
  var forgetButton = document.getElementById('forget-token');

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function serverNow() {
    return Date.now() + clockOffsetMs;
  }

  function setConnection(state, text) {
    connectionEl.dataset.state = state;
    connectionEl.textContent = text;
  }

  // --- the connection -------------------------------------------------------

  function connect() {
    clearTimeout(reconnectTimer);
    if (source) source.close();
    setConnection('connecting', 'connecting…');
    forgetButton.hidden = token === '';
    source = new EventSource('/events' + (token ? '?token=' + encodeURIComponent(token) : ''));
    source.addEventListener('state', function (event) {
      tokenForm.hidden = true;
      setConnection('live', 'live');
      render(JSON.parse(event.data));
    });
    source.addEventListener('rows', function (event) {
      applyRows(JSON.parse(event.data));
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        source = null;
        diagnose();
      } else {
        setConnection('down', 'reconnecting…');
      }
    };
  }

  /** EventSource does not say why it was refused; ask /events once more with fetch to learn the status. */
  function diagnose() {
    var controller = new AbortController();
    fetch('/events', { headers: token ? { Authorization: 'Bearer ' + token } : {}, signal: controller.signal, cache: 'no-store' })
      .then(function (response) {
        controller.abort();
        if (response.status === 401) return askToken(token !== '');
        var wait = (Number(response.headers.get('Retry-After')) || 0) * 1000;
        if (response.status === 503) setConnection('down', 'server busy: retrying in ' + Math.round(Math.max(wait, RETRY_MS) / 1000) + ' s');
        else setConnection('down', 'disconnected: retrying…');
        reconnectTimer = setTimeout(connect, Math.max(wait, RETRY_MS));
      })
      .catch(function () {
        setConnection('down', 'server unreachable: retrying…');
        reconnectTimer = setTimeout(connect, RETRY_MS);
      });
  }

  function askToken(wasWrong) {
    setConnection('down', 'needs the read token');
    tokenForm.hidden = false;
    tokenError.textContent = wasWrong ? 'That token was not accepted.' : '';
    tokenInput.focus();
  }

  tokenForm.addEventListener('submit', function (event) {
    event.preventDefault();
    token = tokenInput.value.trim();
    localStorage.setItem(TOKEN_KEY, token);
    tokenInput.value = '';
    tokenForm.hidden = true;
    connect();
  });

  forgetButton.addEventListener('click', function () {
    localStorage.removeItem(TOKEN_KEY);
    token = '';
    connect();
  });

  // --- cards ----------------------------------------------------------------

  function render(state) {
    windowMs = state.window_sec * 1000;
    quietAfterMs = state.quiet_after_sec * 1000;
    clockOffsetMs = state.now - Date.now();
    state.streams.forEach(function (s) {
      var card = cards.get(s.stream) || createCard(s.stream);
      card.lastReceived = s.last_received === null ? null : Date.parse(s.last_received);
      card.rowsPerMinute = s.rows_per_minute;
      card.rateAt = card.lastReceived;
      showReading(card, s.last_reading);
      showStatus(card);
      if (!range.live) {
        loadSeries(card);
        return;
      }
      var present = new Set();
      s.fields.forEach(function (f) {
        present.add(f.name);
        var chart = card.charts.get(f.name) || createChart(card, f.name);
        chart.unit = f.unit;
        chart.x = f.t.map(function (ms) { return ms / 1000; });
        chart.y = f.v.slice();
        scheduleDraw(chart);
      });
      card.charts.forEach(function (chart, name) {
        if (!present.has(name)) removeChart(card, chart);
      });
      showStatus(card);
    });
  }

  function applyRows(update) {
    var card = cards.get(update.stream);
    if (!card) return;
    clockOffsetMs = Math.max(clockOffsetMs, update.at - Date.now());
    card.lastReceived = update.at;
    card.rowsPerMinute = update.rows_per_minute;
    card.rateAt = update.at;
    showReading(card, update.last_reading);
    showStatus(card);
    if (!range.live) {
      // A range that includes now is fetched again (at most every few seconds) to show the new rows.
      if (bounds().to >= serverNow() - 60000) refreshSoon(card);
      return;
    }
    update.fields.forEach(function (f) {
      var chart = card.charts.get(f.name) || createChart(card, f.name);
      chart.unit = f.unit;
      addPoint(chart, update.at / 1000, f.v);
      scheduleDraw(chart);
    });
  }

  // --- the range ------------------------------------------------------------

  /** `#range=7d` or `#from=YYYY-MM-DD&to=YYYY-MM-DD`; anything else is the last hour. `live`: drawn from the live points. */
  function rangeFromHash() {
    var query = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    var day = /^\d{4}-\d{2}-\d{2}$/;
    var from = query.get('from');
    var to = query.get('to');
    if (from && to && day.test(from) && day.test(to) && !isNaN(Date.parse(from)) && !isNaN(Date.parse(to)) && from <= to) {
      return { key: 'dates', from: from, to: to, live: false };
    }
    var key = query.get('range');
    if (!Object.prototype.hasOwnProperty.call(PRESETS, key)) key = '1h';
    return { key: key, live: key === '1h' };
  }

  /** The range in server milliseconds: a preset ends now; two days run from the first's start to the second's end (UTC). */
  function bounds() {
    if (range.key === 'dates') return { from: Date.parse(range.from + 'T00:00:00Z'), to: Date.parse(range.to + 'T00:00:00Z') + 86400e3 };
    var to = serverNow();
    return { from: to - PRESETS[range.key], to: to };
  }

  function showRange() {
    Array.prototype.forEach.call(rangeEl.querySelectorAll('button[data-range]'), function (button) {
      button.setAttribute('aria-pressed', String(button.dataset.range === range.key));
    });
    rangeForm.classList.toggle('active', range.key === 'dates');
    var today = new Date(serverNow()).toISOString().slice(0, 10);
    rangeFrom.value = range.key === 'dates' ? range.from : rangeFrom.value || new Date(serverNow() - 7 * 86400e3).toISOString().slice(0, 10);
    rangeTo.value = range.key === 'dates' ? range.to : rangeTo.value || today;
    rangeNote.textContent = range.key === 'dates' ? 'charts show ' + range.from + ' to ' + range.to + ' (UTC)' : 'charts show ' + PRESET_NAMES[range.key];
    if (!range.live) rangeNote.textContent += ': a min–max band, the mean as the line';
  }

  function applyRange() {
    var next = rangeFromHash();
    if (next.key === range.key && next.from === range.from && next.to === range.to) return;
    range = next;
    showRange();
    // Every chart is drawn again in the new range's kind (live points or buckets), from a fresh state.
    cards.forEach(function (card) {
      card.charts.forEach(function (chart) { removeChart(card, chart); });
      card.colorIndex = 0;
      clearTimeout(card.refreshTimer);
      clearTimeout(card.soonTimer);
      card.refreshPending = false;
    });
    connect();
  }

  rangeEl.addEventListener('click', function (event) {
    var key = event.target && event.target.dataset ? event.target.dataset.range : undefined;
    if (key) window.location.hash = key === '1h' ? '' : 'range=' + key;
  });
  rangeForm.addEventListener('submit', function (event) {
    event.preventDefault();
    if (rangeFrom.value && rangeTo.value && rangeFrom.value <= rangeTo.value) window.location.hash = 'from=' + rangeFrom.value + '&to=' + rangeTo.value;
  });
  window.addEventListener('hashchange', applyRange);

  /** Fetches the card's buckets for the range and draws them; a live range is fetched again later. */
  function loadSeries(card) {
    clearTimeout(card.refreshTimer);
    card.refreshTimer = null;
    // A fetch planned before the switch to the last hour (live points) is not made.
    if (range.live) return;
    var b = bounds();
    var asked = range;
    var url = '/streams/' + encodeURIComponent(card.name) + '/series?from=' + Math.floor(b.from) + '&to=' + Math.ceil(b.to) + '&points=' + SERIES_POINTS;
    card.loadedAt = Date.now();
    fetch(url, { headers: token ? { Authorization: 'Bearer ' + token } : {}, cache: 'no-store' })
      .then(function (response) {
        if (response.status === 401) {
          askToken(token !== '');
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (answer === null || asked !== range) return;
        showSeries(card, answer, b);
        if (b.to >= serverNow() - 60000) {
          var every = Math.min(REFRESH_MAX_MS, Math.max(REFRESH_MIN_MS * 5, answer.bucket_ms));
          card.refreshTimer = setTimeout(function () { loadSeries(card); }, every);
        }
      })
      .catch(function () {
        card.refreshTimer = setTimeout(function () { loadSeries(card); }, REFRESH_MAX_MS);
      });
  }

  /** Rows came for a card showing a live range: fetch again, but not more often than every few seconds. */
  function refreshSoon(card) {
    if (card.refreshPending) return;
    card.refreshPending = true;
    var wait = Math.max(0, REFRESH_MIN_MS - (Date.now() - (card.loadedAt || 0)));
    card.soonTimer = setTimeout(function () {
      card.refreshPending = false;
      loadSeries(card);
    }, wait);
  }

  function showSeries(card, answer, b) {
    var present = new Set();
    Object.keys(answer.fields).forEach(function (name) {
      var field = answer.fields[name];
      present.add(name);
      var chart = card.charts.get(name) || createChart(card, name);
      chart.unit = field.unit;
      chart.bounds = b;
      // Each bucket drawn at its middle.
      chart.x = field.t.map(function (ms) { return (ms + answer.bucket_ms / 2) / 1000; });
      chart.min = field.min;
      chart.max = field.max;
      chart.y = field.mean;
      scheduleDraw(chart);
    });
    card.charts.forEach(function (chart, name) {
      if (!present.has(name)) removeChart(card, chart);
    });
    card.none.hidden = card.charts.size > 0;
    card.none.textContent = range.live ? 'No numeric fields yet.' : 'No numeric values in this range.';
  }

  function createCard(name) {
    var root = el('section', 'card');
    root.dataset.stream = name;
    var head = el('div', 'card-head');
    head.append(el('h2', '', name));
    var status = el('span', 'status', 'never seen');
    head.append(status);
    var facts = el('div', 'facts');
    var lastTime = el('b', 'last-time', '–');
    var rate = el('b', 'rate', '0');
    var lastLine = el('span', '', 'last reading ');
    lastLine.append(lastTime);
    var rateLine = el('span', '', 'rows/min ');
    rateLine.append(rate);
    facts.append(lastLine, rateLine);
    var reading = el('dl', 'reading');
    var charts = el('div', 'charts');
    var none = el('p', 'none', 'No numeric fields yet.');
    root.append(head, facts, reading, none, charts, downloadForm(name));
    cardsEl.append(root);
    var card = {
      name: name, root: root, status: status, lastTime: lastTime, rateEl: rate, reading: reading,
      chartsEl: charts, none: none, charts: new Map(), lastReceived: null, rowsPerMinute: 0, rateAt: null, colorIndex: 0,
      refreshTimer: null, soonTimer: null, refreshPending: false, loadedAt: 0,
    };
    cards.set(name, card);
    return card;
  }

  function showReading(card, reading) {
    card.reading.textContent = '';
    if (!reading) return;
    // In the viewer's time zone, as the charts' axes are.
    card.lastTime.textContent = new Date(Date.parse(reading.received_at)).toLocaleString();
    reading.cells.forEach(function (pair) {
      card.reading.append(el('dt', '', pair[0]), el('dd', '', pair[1]));
    });
  }

  function showStatus(card) {
    var state;
    var text;
    if (card.lastReceived === null) {
      state = 'never';
      text = 'never seen';
    } else {
      var idle = Math.max(0, serverNow() - card.lastReceived);
      state = idle <= quietAfterMs ? 'receiving' : 'quiet';
      text = state === 'receiving' ? 'receiving' : 'quiet for ' + duration(idle);
    }
    card.root.dataset.state = state;
    card.status.textContent = text;
    // The server's count is of the minute before the last rows; with none since, it falls to 0.
    var rate = card.rateAt !== null && serverNow() - card.rateAt < 60000 ? card.rowsPerMinute : 0;
    card.rateEl.textContent = String(rate);
    card.none.hidden = card.charts.size > 0;
  }

  function duration(ms) {
    var s = Math.round(ms / 1000);
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    if (s < 172800) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' days';
  }

  function downloadForm(name) {
    var form = el('form', 'download');
    var today = new Date(serverNow()).toISOString().slice(0, 10);
    var from = el('input');
    from.type = 'date';
    from.name = 'from';
    from.value = today;
    from.setAttribute('aria-label', 'from day (UTC)');
    var to = el('input');
    to.type = 'date';
    to.name = 'to';
    to.value = today;
    to.setAttribute('aria-label', 'to day (UTC)');
    form.append(el('span', '', 'CSV'), from, el('span', '', 'to'), to, el('button', '', 'Download'));
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var query = new URLSearchParams();
      if (from.value) query.set('from', from.value);
      if (to.value) query.set('to', to.value);
      if (token) query.set('token', token);
      var text = query.toString();
      window.location.href = '/streams/' + encodeURIComponent(name) + '/csv' + (text ? '?' + text : '');
    });
    return form;
  }

  // --- charts ---------------------------------------------------------------

  function createChart(card, name) {
    var figure = el('figure', 'chart');
    figure.dataset.field = name;
    var caption = el('figcaption');
    var label = el('span', '', name);
    var value = el('b', '', '');
    caption.append(label, value);
    var plotEl = el('div', 'plot');
    figure.append(caption, plotEl);
    card.chartsEl.append(figure);
    var chart = {
      name: name, unit: '', x: [], y: [], min: null, max: null, bounds: null, figure: figure, label: label, value: value, plotEl: plotEl, plot: null,
      live: range.live, color: COLORS[card.colorIndex++ % COLORS.length],
    };
    card.charts.set(name, chart);
    card.none.hidden = true;
    return chart;
  }

  function removeChart(card, chart) {
    if (chart.plot) chart.plot.destroy();
    chart.figure.remove();
    card.charts.delete(chart.name);
    dirty.delete(chart);
  }

  /** One point a second, as the server keeps them: a value in the same second replaces the last. */
  function addPoint(chart, sec, value) {
    var n = chart.x.length;
    if (n > 0 && Math.floor(sec) <= Math.floor(chart.x[n - 1])) {
      chart.y[n - 1] = value;
    } else {
      chart.x.push(sec);
      chart.y.push(value);
    }
  }

  function prune(chart) {
    var from = (serverNow() - windowMs) / 1000;
    var drop = 0;
    while (drop < chart.x.length && chart.x[drop] < from) drop++;
    if (drop > 0) {
      chart.x.splice(0, drop);
      chart.y.splice(0, drop);
    }
  }

  function scheduleDraw(chart) {
    dirty.add(chart);
    if (drawScheduled) return;
    drawScheduled = true;
    // At most one redraw a frame, however fast rows arrive.
    requestAnimationFrame(function () {
      drawScheduled = false;
      var charts = Array.from(dirty);
      dirty.clear();
      charts.forEach(draw);
    });
  }

  function draw(chart) {
    if (chart.live) prune(chart);
    var n = chart.y.length;
    var unit = chart.unit ? ' ' + chart.unit : '';
    chart.label.textContent = chart.name + (chart.unit ? ' (' + chart.unit + ')' : '');
    chart.figure.dataset.points = String(n);
    chart.figure.dataset.last = n > 0 ? String(chart.y[n - 1]) : '';
    if (chart.live) {
      chart.value.textContent = n > 0 ? formatValue(chart.y[n - 1]) + unit : '–';
    } else {
      // Over a range: its lowest and highest value, which the band reaches.
      var low = n > 0 ? Math.min.apply(null, chart.min) : NaN;
      var high = n > 0 ? Math.max.apply(null, chart.max) : NaN;
      chart.figure.dataset.min = n > 0 ? String(low) : '';
      chart.figure.dataset.max = n > 0 ? String(high) : '';
      chart.value.textContent = n > 0 ? formatValue(low) + ' – ' + formatValue(high) + unit : '–';
    }
    if (typeof uPlot !== 'function') return;
    var data = chart.live ? [chart.x.slice(), chart.y.slice()] : [chart.x.slice(), chart.min.slice(), chart.max.slice(), chart.y.slice()];
    if (chart.plot === null) {
      chart.plot = new uPlot(chartOptions(chart), data, chart.plotEl);
    } else {
      chart.plot.setData(data);
    }
  }

  function chartOptions(chart) {
    return {
      width: Math.max(200, chart.plotEl.clientWidth),
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          range: function () {
            if (!chart.live) {
              var b = range.key === 'dates' ? chart.bounds : bounds();
              return [b.from / 1000, b.to / 1000];
            }
            var now = serverNow() / 1000;
            return [now - windowMs / 1000, now];
          },
        },
      },
      series: chart.live
        ? [{}, { label: chart.name, stroke: chart.color, width: 2, fill: chart.color + '18' }]
        : [{}, { label: 'min', stroke: chart.color + '55', width: 1 }, { label: 'max', stroke: chart.color + '55', width: 1 }, { label: 'mean', stroke: chart.color, width: 2 }],
      // The band between each bucket's min and max: a spike shows even where the mean smooths it away.
      bands: chart.live ? [] : [{ series: [2, 1], fill: chart.color + '33' }],
      axes: [
        { stroke: '#555', grid: { stroke: '#eceff2' }, ticks: { stroke: '#ccc' } },
        { stroke: '#555', grid: { stroke: '#eceff2' }, ticks: { stroke: '#ccc' }, size: 56 },
      ],
    };
  }

  function formatValue(v) {
    return Math.abs(v) >= 1e6 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : String(Math.round(v * 1000) / 1000);
  }

  // --- timers and layout ----------------------------------------------------

  // Statuses count up every second; charts slide along with the clock every 15 s.
  setInterval(function () {
    cards.forEach(showStatus);
  }, 1000);
  setInterval(function () {
    cards.forEach(function (card) {
      card.charts.forEach(scheduleDraw);
    });
  }, 15000);

  showRange();

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      cards.forEach(function (card) {
        card.charts.forEach(function (chart) {
          if (chart.plot) chart.plot.setSize({ width: Math.max(200, chart.plotEl.clientWidth), height: CHART_HEIGHT });
        });
      });
    }, 150);
  });

  connect();
})();
