// buoycast dashboard (docs/API.md, Dashboard): live observations over Server-Sent Events,
// station cards with sparklines, a lat/lon plot and a Web Audio sonification.
//
// Plain modern JavaScript, inlined into index.html by src/server/dashboard.rs:
// no build step, no library, no request to anything but this gateway. It is
// not a general client library: docs/API.md describes the API for those.
'use strict';

(() => {
  // ---- Configuration -------------------------------------------------------

  /** A slippy-map tile URL template, when the gateway has one (dashboard.tile_url). */
  const TILE_URL = document.querySelector('meta[name="buoycast-tile-url"]')?.content || '';
  const TILE_ATTRIBUTION = document.querySelector('meta[name="buoycast-tile-attribution"]')?.content || '';
  const TILE = 256;

  /** Measurements shown on a card: [key, label, unit, decimals, prominent]. */
  const FIELDS = [
    ['waveHeightM', 'Wave', 'm', 1, true],
    ['windSpeedMps', 'Wind', 'm/s', 1, true],
    ['windDirDeg', 'Wind dir', '°', 0, true],
    ['dominantPeriodS', 'Period', 's', 1, false],
    ['gustMps', 'Gust', 'm/s', 1, false],
    ['waterTempC', 'Water', '°C', 1, false],
    ['airTempC', 'Air', '°C', 1, false],
    ['pressureHpa', 'Pressure', 'hPa', 1, false],
    ['meanWaveDirDeg', 'Wave dir', '°', 0, false],
  ];
  /** The rest, behind a disclosure. */
  const MORE_FIELDS = [
    ['averagePeriodS', 'Avg period', 's', 1],
    ['pressureTendencyHpa', 'Tendency', 'hPa', 1],
    ['dewpointC', 'Dew point', '°C', 1],
    ['visibilityNmi', 'Visibility', 'nmi', 1],
    ['tideFt', 'Tide', 'ft', 2],
  ];
  const HISTORY_HOURS = 24;
  const HISTORY_LIMIT = 1000;
  const HISTORY_PAGES = 3;
  const SPARK_POINTS = 72;
  /** Quiet stations whose own last day is loaded in one request. */
  const QUIET_STATIONS = 50;
  const LOG_LIMIT = 150;
  const MAX_VOICES = 8;
  const FRESH_MS = 4000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const COMPASS = ['N', 'NNE', 'NE', 'ENE', 'E', 'ESE', 'SE', 'SSE', 'S', 'SSW', 'SW', 'WSW', 'W', 'WNW', 'NW', 'NNW'];

  const $ = (id) => document.getElementById(id);
  const el = {
    state: $('conn-state'),
    lastId: $('last-event-id'),
    connect: $('connect'),
    audio: $('audio'),
    volume: $('volume'),
    filterForm: $('filter-form'),
    filterInput: $('filter-input'),
    filterClear: $('filter-clear'),
    filterError: $('filter-error'),
    stationIds: $('station-ids'),
    stations: $('stations'),
    empty: $('stations-empty'),
    stationCount: $('station-count'),
    eventCount: $('event-count'),
    eventTime: $('event-time'),
    plot: $('plot'),
    plotCaption: $('plot-caption'),
    log: $('log'),
    logClear: $('log-clear'),
    spectrumHeading: $('spectrum-heading'),
    spectrumCaption: $('spectrum-caption'),
    spectrogram: $('spectrogram'),
    spectrumPlay: $('spectrum-play'),
  };

  const pageQuery = new URLSearchParams(location.search);
  /** Forwarded to every API call: auth may be on, and EventSource cannot set headers. */
  const accessToken = pageQuery.get('access_token');

  // ---- API -----------------------------------------------------------------

  function apiUrl(path, params = {}) {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== '') url.searchParams.set(key, value);
    }
    if (accessToken) url.searchParams.set('access_token', accessToken);
    return url.toString();
  }

  async function getJson(path, params) {
    const response = await fetch(apiUrl(path, params), { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message += `: ${body.error.message}`;
      } catch (_) { /* not JSON: the status says enough */ }
      throw new Error(message);
    }
    return response.json();
  }

  /** RFC 3339 without milliseconds. */
  function isoSeconds(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  // ---- Model ---------------------------------------------------------------

  /** id -> { id, name, lat, lon, latest, latestAt, history: [{t, wave, wind}], card, fresh } */
  const stations = new Map();
  /** Lower-case ids the user filtered on; empty = all. */
  let filter = new Set();
  let eventCount = 0;

  function stationFor(id) {
    let station = stations.get(id);
    if (!station) {
      station = { id, name: null, lat: null, lon: null, latest: null, latestAt: -Infinity, history: [], card: null, freshUntil: 0 };
      stations.set(id, station);
      structureChanged = true;
    }
    return station;
  }

  function observedAt(observation) {
    return Date.parse(observation.timestamp || observation.observedAt);
  }

  /** Folds one observation (REST or stream shape) into its station. */
  function ingest(observation, live) {
    if (!observation || typeof observation.stationId !== 'string') return null;
    const at = observedAt(observation);
    if (!Number.isFinite(at)) return null;
    const station = stationFor(observation.stationId.toLowerCase());
    if (at >= station.latestAt) {
      // A stream event filtered with `fields=` lacks keys; keep what we had.
      station.latest = station.latest && at === station.latestAt ? { ...station.latest, ...observation } : observation;
      station.latestAt = at;
    }
    const point = { t: at, wave: numberOrNull(observation.waveHeightM), wind: numberOrNull(observation.windSpeedMps) };
    const history = station.history;
    let index = history.length;
    while (index > 0 && history[index - 1].t > at) index--;
    if (index > 0 && history[index - 1].t === at) history[index - 1] = point;
    else history.splice(index, 0, point);
    if (history.length > SPARK_POINTS) history.splice(0, history.length - SPARK_POINTS);
    if (live) {
      station.freshUntil = performance.now() + FRESH_MS;
      voices.update(station);
    }
    markDirty(station);
    return station;
  }

  function numberOrNull(value) {
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  }

  // ---- Formatting ----------------------------------------------------------

  /** A measurement for display: "—" for null, never 0. */
  function formatValue(value, decimals) {
    const number = numberOrNull(value);
    if (number === null) return null;
    return number.toFixed(decimals);
  }

  function compass(degrees) {
    return COMPASS[Math.round((((degrees % 360) + 360) % 360) / 22.5) % 16];
  }

  /** A duration for people: "3 d", "5 h", "12 min". */
  function formatAge(ms) {
    const minutes = Math.max(0, Math.round(ms / 60e3));
    if (minutes >= 2 * 24 * 60) return `${Math.round(minutes / (24 * 60))} d`;
    if (minutes >= 120) return `${Math.round(minutes / 60)} h`;
    return `${minutes} min`;
  }

  function formatTime(ms) {
    if (!Number.isFinite(ms)) return '—';
    const date = new Date(ms);
    const sameDay = new Date().toISOString().slice(0, 10) === date.toISOString().slice(0, 10);
    const time = date.toISOString().slice(11, 16);
    return sameDay ? `${time} UTC` : `${date.toISOString().slice(5, 10)} ${time} UTC`;
  }

  // ---- Rendering -----------------------------------------------------------

  const dirty = new Set();
  let structureChanged = false;
  let frameRequested = false;

  function markDirty(station) {
    dirty.add(station);
    requestFrame();
  }

  function requestFrame() {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(render);
  }

  function visible(station) {
    return filter.size === 0 || filter.has(station.id);
  }

  function render() {
    frameRequested = false;
    for (const station of dirty) renderCard(station);
    dirty.clear();
    if (structureChanged) {
      structureChanged = false;
      const sorted = [...stations.values()].sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
      const fragment = document.createDocumentFragment();
      for (const station of sorted) {
        if (!station.card) renderCard(station);
        fragment.append(station.card);
      }
      el.stations.append(fragment);
      el.stationIds.replaceChildren(...sorted.map((station) => {
        const option = document.createElement('option');
        option.value = station.id;
        if (station.name) option.label = station.name;
        return option;
      }));
    }
    let shown = 0;
    for (const station of stations.values()) {
      const show = visible(station);
      if (station.card.hidden === show) station.card.hidden = !show;
      if (show) shown++;
    }
    el.stationCount.textContent = String(shown);
    el.empty.hidden = shown > 0;
    el.empty.textContent = filter.size ? 'No data yet for the filtered stations.' : 'Waiting for stations…';
    renderPlot();
  }

  function text(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function svg(tag, attributes = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  }

  function buildValues(fields, className) {
    const list = text('dl', className);
    const cells = {};
    for (const [key, label, unit, decimals, prominent] of fields) {
      const cell = text('div', prominent ? 'primary' : '');
      cell.dataset.field = key;
      cell.append(text('dt', '', label), text('dd'));
      list.append(cell);
      cells[key] = { dd: cell.lastChild, unit, decimals };
    }
    return { list, cells };
  }

  function createCard(station) {
    const card = text('article', 'station');
    card.dataset.station = station.id;
    const headingId = `station-${station.id}`;
    card.setAttribute('aria-labelledby', headingId);
    const head = text('header', 'station-head');
    const heading = text('h3');
    heading.id = headingId;
    heading.append(text('span', 'sid', station.id), text('span', 'sname'));
    const updated = text('time', 'updated');
    head.append(heading, updated);
    const main = buildValues(FIELDS, 'values');
    const spark = svg('svg', { class: 'spark', viewBox: '0 0 240 46', preserveAspectRatio: 'none', role: 'img' });
    const more = text('details');
    more.append(text('summary', '', 'More values'));
    const extra = buildValues(MORE_FIELDS, 'values');
    more.append(extra.list);
    card.append(head, main.list, spark, more);
    card.addEventListener('click', (event) => {
      if (event.target.closest('summary')) return;
      flashPin(station.id);
      spectrum.select(station.id).catch((error) => log('error', `spectrum: ${error.message}`));
    });
    station.card = card;
    station.parts = { name: heading.lastChild, updated, cells: { ...main.cells, ...extra.cells }, spark };
  }

  function renderCard(station) {
    if (!station.card) createCard(station);
    const { name, updated, cells, spark } = station.parts;
    name.textContent = station.name || '';
    name.title = station.name || '';
    updated.textContent = station.latest ? formatTime(station.latestAt) : 'no data';
    const quiet = Number.isFinite(station.latestAt) && Date.now() - station.latestAt > HISTORY_HOURS * 3600e3;
    station.card.classList.toggle('quiet', quiet);
    if (quiet) updated.textContent = `quiet · ${formatAge(Date.now() - station.latestAt)} ago`;
    updated.title = station.latest ? formatTime(station.latestAt) : '';
    if (station.latest) updated.dateTime = new Date(station.latestAt).toISOString();
    const latest = station.latest || {};
    for (const [key, cell] of Object.entries(cells)) {
      const shown = formatValue(latest[key], cell.decimals);
      const dd = cell.dd;
      if (shown === null) {
        dd.textContent = '—';
        dd.className = 'missing';
        dd.setAttribute('aria-label', 'not reported');
      } else {
        const degrees = cell.unit === '°';
        const label = degrees ? `${shown}° ${compass(Number(shown))}` : `${shown} ${cell.unit}`;
        dd.textContent = '';
        dd.className = '';
        dd.removeAttribute('aria-label');
        if (degrees) dd.append(text('span', 'num', `${shown}°`), ' ', text('span', 'unit', compass(Number(shown))));
        else dd.append(text('span', 'num', shown), ' ', text('span', 'unit', cell.unit));
        dd.title = label;
      }
    }
    renderSpark(spark, station.history);
    const fresh = station.freshUntil > performance.now();
    station.card.classList.toggle('fresh', fresh);
    if (fresh) setTimeout(() => markDirty(station), FRESH_MS + 50);
  }

  function renderSpark(node, history) {
    const width = 240, height = 46, pad = 3;
    node.replaceChildren();
    node.dataset.points = String(history.length);
    node.append(svg('line', { class: 'base', x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }));
    if (history.length === 0) {
      node.setAttribute('aria-label', 'No recent wave or wind readings');
      return;
    }
    const t0 = history[0].t;
    const t1 = history[history.length - 1].t;
    const span = Math.max(t1 - t0, 1);
    const x = (t) => (history.length === 1 ? width - pad : pad + ((t - t0) / span) * (width - 2 * pad));
    const waves = history.map((p) => p.wave).filter((v) => v !== null);
    const winds = history.map((p) => p.wind).filter((v) => v !== null);
    const waveMax = Math.max(1, ...waves) * 1.1;
    const windMax = Math.max(5, ...winds) * 1.1;
    const y = (value, max) => height - pad - (value / max) * (height - 2 * pad);
    const path = (key, max) => {
      let d = '';
      let pen = false;
      for (const point of history) {
        if (point[key] === null) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${x(point.t).toFixed(1)},${y(point[key], max).toFixed(1)}`;
        pen = true;
      }
      return d;
    };
    const waveD = path('wave', waveMax);
    if (waveD) {
      const first = history.find((p) => p.wave !== null);
      const last = [...history].reverse().find((p) => p.wave !== null);
      if (first !== last) {
        node.append(svg('path', { class: 'wave-area', d: `${waveD}L${x(last.t).toFixed(1)},${height}L${x(first.t).toFixed(1)},${height}Z` }));
      }
      node.append(svg('path', { class: 'wave', d: waveD }));
      node.append(svg('circle', { class: 'dot-wave', cx: x(last.t).toFixed(1), cy: y(last.wave, waveMax).toFixed(1), r: 2.5 }));
    }
    const windD = path('wind', windMax);
    if (windD) node.append(svg('path', { class: 'wind', d: windD }));
    const range = (values, unit) => values.length
      ? `${Math.min(...values).toFixed(1)} to ${Math.max(...values).toFixed(1)} ${unit}`
      : 'not reported';
    node.setAttribute('aria-label',
      `Last ${history.length} readings: wave height ${range(waves, 'm')}, wind speed ${range(winds, 'm/s')}`);
  }

  // ---- Lat/lon plot ----------------------------------------------------------

  let plotKey = '';

  function renderPlot() {
    const placed = [...stations.values()].filter((s) => Number.isFinite(s.lat) && Number.isFinite(s.lon));
    const key = placed.map((s) => `${s.id}:${visible(s)}`).join(',');
    if (key === plotKey) return;
    plotKey = key;
    const plot = el.plot;
    plot.replaceChildren();
    if (placed.length === 0) {
      plot.setAttribute('viewBox', '0 0 360 180');
      const note = svg('text', { x: 180, y: 95, 'text-anchor': 'middle', class: 'grid-label' });
      note.textContent = 'no station positions yet';
      plot.append(note);
      el.plotCaption.textContent = 'no positions yet';
      return;
    }
    const focus = placed.filter(visible).length ? placed.filter(visible) : placed;
    if (TILE_URL) {
      renderTileMap(plot, placed, focus);
      return;
    }
    let latMin = Math.min(...focus.map((s) => s.lat)), latMax = Math.max(...focus.map((s) => s.lat));
    let lonMin = Math.min(...focus.map((s) => s.lon)), lonMax = Math.max(...focus.map((s) => s.lon));
    const grow = (min, max, least) => {
      const mid = (min + max) / 2;
      const half = Math.max((max - min) / 2 * 1.15 + 1, least / 2);
      return [mid - half, mid + half];
    };
    [latMin, latMax] = grow(latMin, latMax, 8);
    [lonMin, lonMax] = grow(lonMin, lonMax, 12);
    latMin = Math.max(latMin, -90); latMax = Math.min(latMax, 90);
    const k = Math.cos(((latMin + latMax) / 2) * Math.PI / 180);
    const scale = 10;
    const width = (lonMax - lonMin) * k * scale;
    const height = (latMax - latMin) * scale;
    // Keep the plot no taller than wide, no wider than 2.2:1.
    let vbW = width, vbH = height, offX = 0, offY = 0;
    if (vbH > vbW) { offX = (vbH - vbW) / 2; vbW = vbH; }
    if (vbW > vbH * 2.2) { offY = (vbW / 2.2 - vbH) / 2; vbH = vbW / 2.2; }
    const px = (lon) => offX + (lon - lonMin) * k * scale;
    const py = (lat) => offY + (latMax - lat) * scale;
    plot.setAttribute('viewBox', `0 0 ${vbW.toFixed(1)} ${vbH.toFixed(1)}`);
    const unit = vbW / 360;
    const span = Math.max(latMax - latMin, lonMax - lonMin);
    const step = span > 90 ? 30 : span > 40 ? 10 : span > 15 ? 5 : 2;
    const grid = svg('g');
    for (let lat = Math.ceil((latMin - 90) / step) * step; lat <= 90; lat += step) {
      const yy = py(lat);
      if (yy < 0 || yy > vbH) continue;
      grid.append(svg('line', { class: 'grid', x1: 0, x2: vbW, y1: yy, y2: yy }));
      const label = svg('text', { class: 'grid-label', x: 3 * unit, y: yy - 2 * unit, 'font-size': 9 * unit });
      label.textContent = `${Math.abs(lat)}°${lat >= 0 ? 'N' : 'S'}`;
      grid.append(label);
    }
    for (let lon = Math.ceil((lonMin - 360) / step) * step; lon <= 360; lon += step) {
      const xx = px(lon);
      if (xx < 0 || xx > vbW) continue;
      grid.append(svg('line', { class: 'grid', x1: xx, x2: xx, y1: 0, y2: vbH }));
      const label = svg('text', { class: 'grid-label', x: xx + 2 * unit, y: vbH - 3 * unit, 'font-size': 9 * unit });
      const wrapped = ((lon + 540) % 360) - 180;
      label.textContent = `${Math.abs(wrapped)}°${wrapped >= 0 ? 'E' : 'W'}`;
      grid.append(label);
    }
    plot.append(grid);
    const labelled = placed.filter(visible).length <= 12;
    for (const station of placed) {
      const cx = px(station.lon), cy = py(station.lat);
      drawPin(plot, station, cx, cy, unit, labelled);
    }
    const shown = placed.filter(visible).length;
    el.plotCaption.textContent = `${shown} of ${placed.length} placed · lat/lon`;
  }

  // ---- Tile map (only when the gateway is configured with a tile server) ----


  // Web Mercator: world pixel coordinates at zoom z.
  function mercX(lon, z) { return ((lon + 180) / 360) * TILE * 2 ** z; }
  function mercY(lat, z) {
    const clamped = Math.max(-85.05, Math.min(85.05, lat)) * Math.PI / 180;
    return ((1 - Math.log(Math.tan(clamped) + 1 / Math.cos(clamped)) / Math.PI) / 2) * TILE * 2 ** z;
  }

  function renderTileMap(plot, placed, focus) {
    const lats = focus.map((s) => s.lat), lons = focus.map((s) => s.lon);
    const latMin = Math.min(...lats), latMax = Math.max(...lats);
    const lonMin = Math.min(...lons), lonMax = Math.max(...lons);
    // The deepest zoom at which the stations (plus a margin) fit about 2 x 1.5 tiles.
    let z = 1;
    for (let zoom = 12; zoom >= 1; zoom--) {
      const w = mercX(lonMax, zoom) - mercX(lonMin, zoom), h = mercY(latMin, zoom) - mercY(latMax, zoom);
      if (w <= TILE * 2 && h <= TILE * 1.5) { z = zoom; break; }
    }
    const cx = (mercX(lonMin, z) + mercX(lonMax, z)) / 2, cy = (mercY(latMin, z) + mercY(latMax, z)) / 2;
    const vbW = TILE * 2.6, vbH = TILE * 1.8;
    const x0 = cx - vbW / 2, y0 = cy - vbH / 2;
    plot.setAttribute('viewBox', `0 0 ${vbW.toFixed(1)} ${vbH.toFixed(1)}`);
    const n = 2 ** z;
    const tiles = svg('g', { class: 'tiles' });
    for (let ty = Math.floor(y0 / TILE); ty <= Math.floor((y0 + vbH) / TILE); ty++) {
      if (ty < 0 || ty >= n) continue;
      for (let tx = Math.floor(x0 / TILE); tx <= Math.floor((x0 + vbW) / TILE); tx++) {
        const wrapped = ((tx % n) + n) % n;
        const href = TILE_URL.replace('{z}', z).replace('{x}', wrapped).replace('{y}', ty);
        tiles.append(svg('image', { href, x: tx * TILE - x0, y: ty * TILE - y0, width: TILE, height: TILE, preserveAspectRatio: 'none' }));
      }
    }
    plot.append(tiles);
    const unit = vbW / 360;
    const labelled = placed.filter(visible).length <= 12;
    for (const station of placed) {
      const px = mercX(station.lon, z) - x0, py = mercY(station.lat, z) - y0;
      if (px < 0 || py < 0 || px > vbW || py > vbH) continue;
      drawPin(plot, station, px, py, unit, labelled);
    }
    const note = svg('text', { class: 'grid-label', x: vbW - 4 * unit, y: vbH - 4 * unit, 'text-anchor': 'end', 'font-size': 8 * unit });
    note.textContent = TILE_ATTRIBUTION;
    plot.append(note);
    el.plotCaption.textContent = `${placed.filter(visible).length} of ${placed.length} placed · map`;
  }

  /** One station's pin (ring, dot, tooltip, optional label) at (cx, cy); a click shows its card. */
  function drawPin(plot, station, cx, cy, unit, labelled) {
    const group = svg('g', { 'data-pin': station.id });
    const ring = svg('circle', { class: 'ring', cx, cy, r: 3 * unit });
    const pin = svg('circle', { class: `pin ${visible(station) ? 'in' : 'out'}`, cx, cy, r: 3.6 * unit });
    const title = svg('title');
    title.textContent = `${station.id}${station.name ? ` · ${station.name}` : ''} (${station.lat.toFixed(2)}, ${station.lon.toFixed(2)})`;
    pin.append(title);
    pin.addEventListener('click', () => {
      if (station.card && !station.card.hidden) station.card.scrollIntoView({ behavior: 'smooth', block: 'center' });
    });
    group.append(ring, pin);
    if (labelled && visible(station)) {
      const label = svg('text', { class: 'pin-label', x: cx + 5 * unit, y: cy + 3.5 * unit, 'font-size': 10 * unit, 'stroke-width': 3 * unit });
      label.textContent = station.id;
      group.append(label);
    }
    plot.append(group);
  }

  function flashPin(id) {
    const ring = el.plot.querySelector(`[data-pin="${CSS.escape(id)}"] .ring`);
    if (!ring) return;
    ring.classList.remove('fresh');
    // Restart the CSS animation.
    void ring.getBoundingClientRect();
    ring.classList.add('fresh');
  }

  // ---- Event log -------------------------------------------------------------

  function log(kind, message) {
    const item = text('li');
    const now = new Date();
    const time = text('time', '', now.toISOString().slice(11, 19));
    time.dateTime = now.toISOString();
    item.append(time, text('span', `kind k-${kind}`, kind), text('span', 'msg', message));
    item.dataset.kind = kind;
    el.log.prepend(item);
    while (el.log.childElementCount > LOG_LIMIT) el.log.lastElementChild.remove();
  }

  // ---- History over REST -----------------------------------------------------

  let historyGeneration = 0;

  async function loadStations() {
    let page = 1;
    for (;;) {
      const body = await getJson('/v1/stations', { page, limit: 1000 });
      for (const item of body.data || []) {
        const station = stationFor(String(item.id).toLowerCase());
        station.name = item.name || null;
        station.lat = numberOrNull(item.lat);
        station.lon = numberOrNull(item.lon);
        if (item.latest) ingest(item.latest, false);
        markDirty(station);
      }
      const meta = body.meta || {};
      if (!meta.total || page * (meta.limit || 1000) >= meta.total || (body.data || []).length === 0) break;
      page++;
    }
  }

  /** Recent history, newest first, a few pages back (each page counts against the rate limit). */
  async function loadHistory() {
    const generation = ++historyGeneration;
    const params = { since: isoSeconds(Date.now() - HISTORY_HOURS * 3600e3), limit: HISTORY_LIMIT };
    if (filter.size) params.station = [...filter].join(',');
    let loaded = 0;
    for (let page = 0; page < HISTORY_PAGES; page++) {
      const body = await getJson('/v1/observations', params);
      if (generation !== historyGeneration) return loaded;
      const rows = body.data || [];
      for (let i = rows.length - 1; i >= 0; i--) ingest(rows[i], false);
      loaded += rows.length;
      if (rows.length < HISTORY_LIMIT) break;
      const oldest = observedAt(rows[rows.length - 1]);
      if (!Number.isFinite(oldest)) break;
      params.until = isoSeconds(oldest - 1000);
    }
    return loaded;
  }

  /**
   * A station that went quiet (its latest reading is older than the window)
   * gets the last HISTORY_HOURS of its own readings instead of an empty
   * sparkline, and its card says how old they are. One request covers up to
   * QUIET_STATIONS of them, the most recently heard first.
   */
  async function loadQuietHistory(windowStart) {
    const quiet = [...stations.values()]
      .filter((station) => Number.isFinite(station.latestAt) && station.latestAt < windowStart && station.history.length < 2)
      .filter((station) => filter.size === 0 || filter.has(station.id))
      .sort((a, b) => b.latestAt - a.latestAt)
      .slice(0, QUIET_STATIONS);
    if (quiet.length === 0) return 0;
    const oldest = Math.min(...quiet.map((station) => station.latestAt));
    const body = await getJson('/v1/observations', {
      station: quiet.map((station) => station.id).join(','),
      since: isoSeconds(oldest - HISTORY_HOURS * 3600e3),
      until: isoSeconds(windowStart),
      limit: HISTORY_LIMIT,
    });
    const anchors = new Map(quiet.map((station) => [station.id, station.latestAt]));
    let loaded = 0;
    const rows = body.data || [];
    for (let i = rows.length - 1; i >= 0; i--) {
      const row = rows[i];
      const anchor = anchors.get(String(row.stationId).toLowerCase());
      if (anchor === undefined || observedAt(row) < anchor - HISTORY_HOURS * 3600e3) continue;
      ingest(row, false);
      loaded++;
    }
    return loaded;
  }

  async function refreshHistory(reason) {
    try {
      const windowStart = Date.now() - HISTORY_HOURS * 3600e3;
      const n = (await loadHistory()) + (await loadQuietHistory(windowStart));
      log('history', `${n} observations loaded${reason ? ` (${reason})` : ''}`);
    } catch (error) {
      log('error', `history: ${error.message}`);
    }
  }

  // ---- The stream --------------------------------------------------------------

  let source = null;
  let lastEventId = null;
  let retryTimer = null;
  let retryDelay = 1000;

  /** Stream ids are `millis-seq`; compare them as number pairs. */
  function compareIds(a, b) {
    const [a1, a2 = 0] = a.split('-').map(Number);
    const [b1, b2 = 0] = b.split('-').map(Number);
    if (![a1, a2, b1, b2].every(Number.isFinite)) return 1;
    return a1 - b1 || a2 - b2;
  }

  function setState(state) {
    if (el.state.dataset.state === state) return;
    el.state.dataset.state = state;
    el.state.textContent = state;
    const connectedish = state !== 'disconnected';
    el.connect.textContent = connectedish ? 'Disconnect' : 'Connect';
    el.connect.classList.toggle('primary', !connectedish);
    log('state', state);
  }

  function connect(how = 'connecting') {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (source) source.close();
    setState(how);
    // Every station's current values come first, on the stream itself (and
    // again after a reset): no REST round trip for them.
    // Spectra too: the selected station's spectrogram follows them live.
    const params = { snapshot: 'latest', kinds: 'observation,spectrum' };
    if (filter.size) params.station = [...filter].join(',');
    // A fresh EventSource cannot send Last-Event-ID; the query parameter does the same.
    if (lastEventId) params.last_event_id = lastEventId;
    const stream = new EventSource(apiUrl('/v1/observations/stream', params));
    source = stream;
    const mine = (handler) => (event) => { if (source === stream) handler(event); };
    stream.addEventListener('open', mine(() => {
      retryDelay = 1000;
      setState('connected');
    }));
    stream.addEventListener('connection', mine(() => {
      log('connection', lastEventId ? `stream open, resuming after ${lastEventId}` : 'stream open');
    }));
    stream.addEventListener('observation', mine(onObservation));
    stream.addEventListener('spectrum', mine(onSpectrum));
    stream.addEventListener('snapshot', mine((event) => {
      try { ingest(JSON.parse(event.data), false); } catch (_) { log('error', 'a snapshot that is not JSON was skipped'); }
    }));
    stream.addEventListener('reset', mine((event) => {
      log('reset', `${reasonOf(event)}; reloading history`);
      lastEventId = null;
      el.lastId.textContent = 'reset';
      refreshHistory('after reset');
    }));
    stream.addEventListener('lagged', mine((event) => {
      let skipped = '';
      try { skipped = ` (${JSON.parse(event.data).skipped} behind)`; } catch (_) { /* keep it short */ }
      log('lagged', `too slow${skipped}; the server closes and we catch up`);
    }));
    stream.addEventListener('error', mine(() => {
      if (stream.readyState === EventSource.CLOSED) {
        // Refused (503, 401, 400…): EventSource gives up, so we retry with backoff.
        setState('reconnecting');
        log('error', `stream refused; retrying in ${Math.round(retryDelay / 1000)} s`);
        retryTimer = setTimeout(() => connect('reconnecting'), retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } else {
        // EventSource reconnects by itself and sends Last-Event-ID.
        setState('reconnecting');
      }
    }));
  }

  function disconnect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (source) source.close();
    source = null;
    setState('disconnected');
  }

  function reasonOf(event) {
    try { return JSON.parse(event.data).reason || event.type; } catch (_) { return event.type; }
  }

  /** Records a stream event's id; false when it was seen already. */
  function advance(event) {
    if (event.lastEventId) {
      if (lastEventId && compareIds(event.lastEventId, lastEventId) <= 0) return false; // already seen
      lastEventId = event.lastEventId;
      el.lastId.textContent = lastEventId;
      el.lastId.title = lastEventId;
    }
    return true;
  }

  function onSpectrum(event) {
    // A snapshot spectrum has no id and is never a repeat.
    if (!advance(event)) return;
    try {
      spectrum.live(JSON.parse(event.data));
    } catch (_) {
      log('error', 'a spectrum that is not JSON was skipped');
    }
  }

  function onObservation(event) {
    if (!advance(event)) return;
    let observation;
    try {
      observation = JSON.parse(event.data);
    } catch (_) {
      log('error', 'an observation that is not JSON was skipped');
      return;
    }
    const station = ingest(observation, true);
    if (!station) return;
    eventCount++;
    el.eventCount.textContent = String(eventCount);
    el.eventTime.textContent = formatTime(Date.now()).replace(/ UTC$/, '');
    const wave = formatValue(observation.waveHeightM, 1);
    const wind = formatValue(observation.windSpeedMps, 1);
    log('observation', `${station.id} · wave ${wave === null ? '—' : `${wave} m`} · wind ${wind === null ? '—' : `${wind} m/s`}`);
    flashPin(station.id);
  }

  // ---- Station filter ------------------------------------------------------------

  function parseFilter(raw) {
    const ids = raw.split(/[\s,]+/).map((id) => id.trim().toLowerCase()).filter(Boolean);
    const bad = ids.filter((id) => !/^[a-z0-9]{1,16}$/.test(id));
    return { ids, bad };
  }

  function applyFilter(ids) {
    filter = new Set(ids);
    el.filterInput.value = ids.join(', ');
    const url = new URL(location.href);
    if (ids.length) url.searchParams.set('station', ids.join(','));
    else url.searchParams.delete('station');
    history.replaceState(null, '', url);
    log('filter', ids.length ? `only ${ids.join(', ')}` : 'all stations');
    plotKey = '';
    voices.releaseHidden();
    requestFrame();
    if (source || retryTimer) connect('connecting');
    refreshHistory('filter');
  }

  el.filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const { ids, bad } = parseFilter(el.filterInput.value);
    if (bad.length) {
      el.filterError.textContent = `Not a station id: ${bad.join(', ')} (1–16 letters or digits)`;
      el.filterInput.setAttribute('aria-invalid', 'true');
      return;
    }
    el.filterError.textContent = '';
    el.filterInput.removeAttribute('aria-invalid');
    applyFilter(ids);
  });
  el.filterClear.addEventListener('click', () => {
    el.filterError.textContent = '';
    el.filterInput.removeAttribute('aria-invalid');
    applyFilter([]);
  });

  el.connect.addEventListener('click', () => {
    if (el.state.dataset.state === 'disconnected') connect('connecting');
    else disconnect();
  });
  el.logClear.addEventListener('click', () => el.log.replaceChildren());

  // ---- Web Audio -------------------------------------------------------------------
  //
  // One voice per recently active station (at most MAX_VOICES): wave height sets
  // the pitch (on a pentatonic scale, so chords stay calm), wind speed the
  // loudness, wind direction the stereo position, and the dominant wave period a
  // slow swell in the loudness. Every change is a smooth ramp.

  const voices = (() => {
    let context = null;
    let master = null;
    let on = false;
    const active = new Map(); // id -> { osc, gain, pan, lfo, lfoGain, usedAt }
    const PENTATONIC = [0, 2, 4, 7, 9];

    function pitch(waveHeightM) {
      // 0 m -> A2 (110 Hz); each metre climbs the scale by two steps.
      const steps = Math.round(Math.min(Math.max(waveHeightM, 0), 10) * 2);
      const octave = Math.floor(steps / PENTATONIC.length);
      const semitone = octave * 12 + PENTATONIC[steps % PENTATONIC.length];
      return 110 * 2 ** (semitone / 12);
    }

    function voiceFor(station) {
      let voice = active.get(station.id);
      if (voice) return voice;
      if (active.size >= MAX_VOICES) {
        const [oldest] = [...active.entries()].sort((a, b) => a[1].usedAt - b[1].usedAt)[0];
        release(oldest);
      }
      const now = context.currentTime;
      const osc = context.createOscillator();
      osc.type = 'triangle';
      const gain = context.createGain();
      gain.gain.setValueAtTime(0, now);
      const pan = context.createStereoPanner();
      const lfo = context.createOscillator();
      lfo.frequency.setValueAtTime(0.1, now);
      const lfoGain = context.createGain();
      lfoGain.gain.setValueAtTime(0, now);
      lfo.connect(lfoGain).connect(gain.gain);
      osc.connect(gain).connect(pan).connect(master);
      osc.start();
      lfo.start();
      voice = { osc, gain, pan, lfo, lfoGain, usedAt: 0 };
      active.set(station.id, voice);
      return voice;
    }

    function release(id) {
      const voice = active.get(id);
      if (!voice) return;
      active.delete(id);
      const now = context.currentTime;
      voice.gain.gain.cancelScheduledValues(now);
      voice.gain.gain.setTargetAtTime(0, now, 0.4);
      voice.lfoGain.gain.setTargetAtTime(0, now, 0.4);
      voice.osc.stop(now + 3);
      voice.lfo.stop(now + 3);
    }

    function update(station) {
      el.audio.dataset.voices = String(active.size);
      if (!on || !context || !station.latest || !visible(station)) return;
      const latest = station.latest;
      const wave = numberOrNull(latest.waveHeightM);
      const wind = numberOrNull(latest.windSpeedMps);
      if (wave === null && wind === null) return;
      const voice = voiceFor(station);
      voice.usedAt = performance.now();
      const now = context.currentTime;
      const level = (0.05 + Math.min(wind ?? 3, 25) / 25 * 0.25) / Math.sqrt(Math.max(active.size, 1));
      const direction = numberOrNull(latest.windDirDeg);
      const period = numberOrNull(latest.dominantPeriodS);
      voice.osc.frequency.setTargetAtTime(pitch(wave ?? 0.5), now, 0.6);
      voice.gain.gain.setTargetAtTime(level, now, 0.8);
      voice.pan.pan.setTargetAtTime(direction === null ? 0 : Math.sin(direction * Math.PI / 180) * 0.9, now, 0.8);
      voice.lfo.frequency.setTargetAtTime(period ? 1 / period : 0.1, now, 1);
      voice.lfoGain.gain.setTargetAtTime(level * 0.5, now, 1);
      el.audio.dataset.voices = String(active.size);
    }

    async function toggle() {
      on = !on;
      if (on) {
        if (!context) {
          context = new AudioContext();
          master = context.createGain();
          master.gain.setValueAtTime(0, context.currentTime);
          const compressor = context.createDynamicsCompressor();
          master.connect(compressor).connect(context.destination);
        }
        await context.resume();
        master.gain.setTargetAtTime(Number(el.volume.value), context.currentTime, 0.5);
        const recent = [...stations.values()]
          .filter((s) => s.latest && visible(s))
          .sort((a, b) => b.latestAt - a.latestAt)
          .slice(0, MAX_VOICES);
        for (const station of recent) update(station);
      } else if (context) {
        master.gain.setTargetAtTime(0, context.currentTime, 0.3);
        for (const id of [...active.keys()]) release(id);
      }
      el.audio.setAttribute('aria-pressed', String(on));
      el.audio.dataset.audio = on ? 'on' : 'off';
      el.audio.querySelector('.audio-text').textContent = on ? 'Sound on' : 'Sound off';
      el.audio.dataset.voices = String(active.size);
      el.volume.disabled = !on;
      log('audio', on ? `sonifying ${active.size} station${active.size === 1 ? '' : 's'}` : 'muted');
    }

    el.volume.addEventListener('input', () => {
      if (on && context) master.gain.setTargetAtTime(Number(el.volume.value), context.currentTime, 0.2);
    });

    return { update, toggle, releaseHidden: () => { for (const id of [...active.keys()]) if (!visible(stations.get(id))) release(id); } };
  })();

  el.audio.addEventListener('click', () => {
    voices.toggle().catch((error) => log('error', `audio: ${error.message}`));
  });

  // ---- Wave spectrum --------------------------------------------------------------------
  //
  // The selected station's recent directional wave spectra (GET
  // /v1/spectra/by-station/{id}) as a spectrogram, and "Play": the newest
  // spectrum as one sine per band, the ocean's 0.02–0.5 Hz mapped
  // pitch-linearly onto 110–1760 Hz (as the bridge's --spectrum-audible
  // 110:1760), level √(density / the loudest band's), pan sin(α1).

  const spectrum = (() => {
    const SPECTRA = 48;
    let selected = null;
    let newest = null;
    let shown = []; // the selected station's spectra, oldest first
    let context = null;
    let playing = null; // { master, partials }

    function audible(freqHz) {
      const x = Math.min(Math.max(Math.log(freqHz / 0.02) / Math.log(25), 0), 1);
      return 110 * 16 ** x;
    }

    function draw(spectra) {
      const canvas = el.spectrogram;
      const g = canvas.getContext('2d');
      g.clearRect(0, 0, canvas.width, canvas.height);
      canvas.dataset.columns = String(spectra.length);
      if (!spectra.length) return;
      const max = Math.max(1e-9, ...spectra.flatMap((s) => s.bands.map((b) => b.density ?? 0)));
      const w = canvas.width / spectra.length;
      spectra.forEach((s, i) => {
        const n = s.bands.length;
        s.bands.forEach((band, j) => {
          const level = Math.sqrt((band.density ?? 0) / max);
          g.fillStyle = `hsl(${200 - level * 160}, 80%, ${8 + level * 62}%)`;
          const h = canvas.height / n;
          g.fillRect(i * w, canvas.height - (j + 1) * h, Math.ceil(w), Math.ceil(h));
        });
      });
    }

    async function select(id) {
      if (selected === id) return;
      selected = id;
      shown = [];
      for (const card of el.stations.querySelectorAll('.station.selected')) card.classList.remove('selected');
      const card = stations.get(id)?.card;
      if (card) card.classList.add('selected');
      el.spectrumHeading.textContent = `Wave spectrum · ${id}`;
      el.spectrumCaption.textContent = 'Loading…';
      stop();
      const body = await getJson(`v1/spectra/by-station/${encodeURIComponent(id)}`, { limit: SPECTRA });
      if (selected !== id) return;
      // Spectra that arrived live while this loaded are newer: keep them.
      const loaded = body.data || [];
      const after = loaded.length ? Date.parse(loaded[loaded.length - 1].timestamp) : -Infinity;
      shown = loaded.concat(shown.filter((s) => s.stationId === id && Date.parse(s.timestamp) > after));
      show();
      log('spectrum', `${id}: ${shown.length} spectra`);
    }

    /** Draws `shown` and says what it holds. */
    function show() {
      shown = shown.slice(-SPECTRA);
      newest = shown.length ? shown[shown.length - 1] : null;
      el.spectrumPlay.disabled = !newest;
      el.spectrogram.dataset.station = selected;
      draw(shown);
      if (!newest) {
        el.spectrumCaption.textContent = `No wave spectra for ${selected}.`;
        return;
      }
      const hs = formatValue(newest.significantHeightM, 1);
      const tp = formatValue(newest.peakPeriodS, 1);
      el.spectrumCaption.textContent =
        `${shown.length} spectra to ${formatTime(Date.parse(newest.timestamp))}: ` +
        `Hm0 ${hs ?? '—'} m, peak period ${tp ?? '—'} s, ${newest.bands.length} bands`;
    }

    /** A spectrum from the stream: the selected station's joins the
     * spectrogram (a correction replaces its time's column). */
    function live(s) {
      if (!selected || s.stationId !== selected || !Array.isArray(s.bands)) return;
      const at = Date.parse(s.timestamp);
      const same = shown.findIndex((x) => Date.parse(x.timestamp) === at);
      if (same >= 0) shown[same] = s;
      else if (!shown.length || at > Date.parse(shown[shown.length - 1].timestamp)) shown.push(s);
      else return; // older than what is shown: history has it
      show();
      log('spectrum', `${s.stationId} ${s.timestamp}: ${s.bands.length} bands`);
    }

    function stop() {
      if (!playing) return;
      const { master, partials } = playing;
      playing = null;
      const now = context.currentTime;
      master.gain.setTargetAtTime(0, now, 0.3);
      for (const osc of partials) osc.stop(now + 2);
      el.spectrumPlay.setAttribute('aria-pressed', 'false');
      el.spectrumPlay.textContent = 'Play';
      el.spectrumPlay.dataset.partials = '0';
    }

    async function toggle() {
      if (playing) { stop(); return; }
      if (!newest) return;
      context = context || new AudioContext();
      await context.resume();
      const now = context.currentTime;
      const master = context.createGain();
      master.gain.setValueAtTime(0, now);
      master.gain.setTargetAtTime(Number(el.volume.value) * 0.5, now, 0.5);
      master.connect(context.destination);
      const loudest = Math.max(1e-9, ...newest.bands.map((b) => b.density ?? 0));
      const partials = newest.bands.slice(0, 64).map((band) => {
        const osc = context.createOscillator();
        osc.frequency.setValueAtTime(audible(band.freqHz), now);
        const gain = context.createGain();
        gain.gain.setValueAtTime(Math.sqrt((band.density ?? 0) / loudest) / 8, now);
        const pan = context.createStereoPanner();
        const alpha1 = band.alpha1;
        pan.pan.setValueAtTime(alpha1 === null || alpha1 === undefined ? 0 : Math.sin(alpha1 * Math.PI / 180), now);
        osc.connect(gain).connect(pan).connect(master);
        osc.start(now);
        return osc;
      });
      playing = { master, partials };
      el.spectrumPlay.setAttribute('aria-pressed', 'true');
      el.spectrumPlay.textContent = 'Stop';
      el.spectrumPlay.dataset.partials = String(partials.length);
      log('audio', `playing ${selected}'s spectrum: ${partials.length} partials`);
    }

    el.spectrumPlay.addEventListener('click', () => {
      toggle().catch((error) => log('error', `audio: ${error.message}`));
    });

    return { select, live };
  })();

  // ---- Start --------------------------------------------------------------------------

  const initial = parseFilter(pageQuery.get('station') || '');
  if (initial.ids.length && !initial.bad.length) {
    filter = new Set(initial.ids);
    el.filterInput.value = initial.ids.join(', ');
  }
  requestFrame();
  connect('connecting');
  loadStations()
    .then(() => log('stations', `${stations.size} stations known`))
    .catch((error) => log('error', `stations: ${error.message}`))
    .finally(() => refreshHistory());
})();
