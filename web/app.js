// The sampler app (index.html): model and sampler pickers, a live view of the
// run (x_t and predicted x0, trajectory strip, noise-level plot, timings),
// PNG downloads and shareable links. All the work happens in the worker
// behind diffuse.js.
import { createSampler, fetchManifest, DiffuseError } from './diffuse.js';
import { drawBatch, batchToPNG, drawSample, isPoints, fieldGrid } from './render.js';
import { registerServiceWorker } from './sw-register.js';

const $ = (id) => document.getElementById(id);
const el = {
  form: $('controls'), model: $('model'), modelInfo: $('model-info'), loadBox: $('load-progress'),
  download: $('download'), downloadLabel: $('download-label'), sampler: $('sampler'),
  samplerSummary: $('sampler-summary'), steps: $('steps'), params: $('sampler-params'), seed: $('seed'),
  dice: $('dice'), classField: $('class-field'), cls: $('class'), guidanceField: $('guidance-field'),
  guidance: $('guidance'), batch: $('batch'), backend: $('backend'), backendInfo: $('backend-info'),
  run: $('run'), cancel: $('cancel'), error: $('error'), status: $('status'), xt: $('xt'), x0: $('x0'),
  statStep: $('stat-step'), statLevel: $('stat-level'), statStepMs: $('stat-step-ms'), statTotal: $('stat-total'),
  statBackend: $('stat-backend'), png: $('png'), pngGrid: $('png-grid'), copyLink: $('copy-link'), link: $('link'),
  strip: $('strip'), plot: $('plot'), cards: $('model-cards'), update: $('update'), updateReload: $('update-reload'),
  scoreToggle: $('score-field-toggle'), showField: $('show-field'), interpSection: $('interp-section'),
  seedTo: $('seed-to'), diceTo: $('dice-to'), interpFrames: $('interp-frames'), interpRun: $('interp-run'),
  interpStatus: $('interp-status'), interp: $('interp'), interpStrip: $('interp-strip'),
};

const PARAM_KEYS = ['eta', 'sigmas', 'rtol', 'atol', 'snr', 'corrector_steps', 'end_time'];
const STRIP_LEN = 10;

const state = {
  manifest: null,
  sampler: null, // diffuse.js Sampler
  model: null, // loaded model handle
  loading: null, // Promise of the model being loaded
  job: null,
  lastRun: null, // settings of the run on screen
  result: null,
  levels: [],
  autorun: false,
};

// ---------- status and errors ----------

function setStatus(text) { el.status.textContent = text; }

function showError(err) {
  const msg = err instanceof Error ? err.message : String(err);
  el.error.replaceChildren();
  const p = document.createElement('p');
  p.textContent = msg;
  el.error.append(p);
  el.error.hidden = false;
}

function clearError() { el.error.hidden = true; el.error.replaceChildren(); }

function fmtMs(ms) {
  if (ms == null || !isFinite(ms)) return '–';
  return ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

function fmtBytes(n) { return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.round(n / 1e3)} kB`; }

// ---------- settings <-> URL ----------

function currentEntry() {
  return state.manifest?.models.find((m) => m.name === el.model.value);
}

function currentSamplerInfo() {
  return state.sampler?.samplers?.find((s) => s.name === el.sampler.value);
}

/** The settings the form shows, as URL-ready strings. */
function readSettings() {
  const s = {
    model: el.model.value,
    sampler: el.sampler.value,
    steps: el.steps.value,
    seed: el.seed.value,
    batch: el.batch.value,
    backend: el.backend.value,
  };
  const info = currentSamplerInfo();
  for (const p of info?.params || []) {
    if (!PARAM_KEYS.includes(p.name)) continue;
    const input = document.getElementById(`param-${p.name}`);
    if (input && input.value !== '') s[p.name] = input.value;
  }
  const entry = currentEntry();
  if (entry?.conditional) s.class = el.cls.value;
  if (entry?.guidance && el.cls.value !== '') s.guidance = el.guidance.value;
  return s;
}

function settingsURL(s) {
  const u = new URL(location.href);
  u.search = '';
  u.hash = '';
  for (const [k, v] of Object.entries(s)) if (v !== undefined && v !== null) u.searchParams.set(k, v);
  return u.href;
}

function urlSettings() {
  const q = new URLSearchParams(location.search);
  const s = {};
  for (const [k, v] of q) s[k] = v;
  return s;
}

// ---------- building the controls ----------

function fillModels(manifest, wanted) {
  el.model.replaceChildren();
  const showDev = manifest.models.every((m) => m.dev) || new URLSearchParams(location.search).has('dev') || (wanted && wanted.startsWith('dev-'));
  for (const m of manifest.models) {
    if (m.dev && !showDev) continue;
    const o = document.createElement('option');
    o.value = m.name;
    o.textContent = m.title && m.title !== m.name ? `${m.name} — ${m.title.replace(/^[^—]*—\s*/, '')}` : m.name;
    el.model.append(o);
  }
  el.model.value = manifest.models.some((m) => m.name === wanted) ? wanted : manifest.default;
  el.model.disabled = false;
  el.cards.replaceChildren();
  manifest.models.filter((m) => !m.dev || showDev).forEach((m, i) => {
    if (i) el.cards.append(', ');
    if (m.cardURL) {
      const a = document.createElement('a');
      a.href = m.cardURL;
      a.textContent = m.name;
      el.cards.append(a);
    } else el.cards.append(m.name);
  });
}

function describeModel(entry) {
  el.modelInfo.replaceChildren();
  if (!entry) return;
  const [c, h, w] = entry.shape;
  const parts = [`${c === 3 ? 'RGB' : c === 1 ? 'greyscale' : `${c}-channel`} ${h}×${w}`,
    entry.conditional ? `${entry.classes} classes` : 'unconditional', fmtBytes(entry.size)];
  el.modelInfo.append(parts.join(' · '));
  if (entry.summary) {
    el.modelInfo.append(document.createElement('br'), entry.summary.length > 160 ? `${entry.summary.slice(0, 157)}…` : entry.summary);
  }
  if (entry.cardURL) {
    const a = document.createElement('a');
    a.href = entry.cardURL;
    a.textContent = 'Model card';
    el.modelInfo.append(' ', a);
  }
}

const IMAGE_BATCH_MAX = 16;
const POINT_BATCH_MAX = 4096;

/** Point models (2-D toys) sample clouds of hundreds of points; image models
 * a handful of images. */
function fitBatch(entry, wanted) {
  const points = entry && isPoints([1, ...entry.shape]);
  el.batch.max = String(points ? POINT_BATCH_MAX : IMAGE_BATCH_MAX);
  let b = Number(wanted ?? el.batch.value) || 1;
  if (points && wanted === undefined && b <= IMAGE_BATCH_MAX) b = 512;
  if (!points && b > IMAGE_BATCH_MAX) b = 1;
  el.batch.value = String(Math.min(b, Number(el.batch.max)));
}

function fillClasses(entry, wanted) {
  el.classField.hidden = !entry?.conditional;
  el.cls.replaceChildren();
  if (!entry?.conditional) { updateGuidance(entry); return; }
  if (entry.nullClass >= 0) {
    const o = document.createElement('option');
    o.value = '';
    o.textContent = 'none (unconditional)';
    el.cls.append(o);
  }
  for (let i = 0; i < entry.classes; i++) {
    if (i === entry.nullClass) continue;
    const o = document.createElement('option');
    o.value = String(i);
    o.textContent = String(i);
    el.cls.append(o);
  }
  const opts = [...el.cls.options].map((o) => o.value);
  el.cls.value = opts.includes(wanted) ? wanted : opts.includes('0') ? '0' : opts[0];
  updateGuidance(entry);
}

function updateGuidance(entry = currentEntry()) {
  const on = !!entry?.guidance;
  el.guidanceField.hidden = !on;
  el.guidance.disabled = !on || el.cls.value === '';
}

function fillSamplers(list, wanted) {
  el.sampler.replaceChildren();
  for (const s of list) {
    const o = document.createElement('option');
    o.value = s.name;
    o.textContent = s.name;
    el.sampler.append(o);
  }
  el.sampler.value = list.some((s) => s.name === wanted) ? wanted : 'ddim';
  el.sampler.disabled = false;
}

function paramLabel(name) {
  return { eta: 'η (eta)', sigmas: 'σ spacing', rtol: 'Relative tolerance', atol: 'Absolute tolerance', snr: 'Corrector SNR', corrector_steps: 'Corrector steps', end_time: 'End time ε' }[name] || name;
}

/** The current values of the sampler's own parameter inputs. */
function paramValues() {
  const v = {};
  for (const input of el.params.querySelectorAll('input, select')) v[input.name] = input.value;
  return v;
}

/** Rebuilds the inputs of the sampler's own parameters. */
function buildParams(values = {}) {
  const info = currentSamplerInfo();
  el.params.replaceChildren();
  el.samplerSummary.textContent = info ? info.summary : '';
  const discrete = (currentEntry()?.schedule || '').startsWith('discrete');
  const takesSteps = !!info?.params.some((p) => p.name === 'steps');
  el.steps.disabled = !takesSteps;
  el.steps.title = takesSteps ? '' : 'This sampler chooses its own steps';
  for (const p of info?.params || []) {
    if (!PARAM_KEYS.includes(p.name)) continue;
    if (p.name === 'end_time' && discrete) continue; // only continuous-time schedules have one
    const div = document.createElement('div');
    div.className = 'field';
    const label = document.createElement('label');
    label.htmlFor = `param-${p.name}`;
    label.textContent = paramLabel(p.name);
    let input;
    if (p.kind === 'choice') {
      input = document.createElement('select');
      for (const c of p.choices) {
        const o = document.createElement('option');
        o.value = c;
        o.textContent = c || "model's default";
        input.append(o);
      }
    } else {
      input = document.createElement('input');
      input.type = 'number';
      input.step = p.kind === 'int' ? '1' : p.name === 'eta' ? '0.1' : 'any';
      input.min = String(p.min);
      input.max = String(p.max);
      input.value = p.name === 'end_time' && !p.default ? '' : String(p.default);
      if (p.name === 'end_time') input.placeholder = "schedule's";
    }
    input.id = `param-${p.name}`;
    input.name = p.name;
    input.title = p.doc;
    if (values[p.name] !== undefined) input.value = values[p.name];
    const hint = document.createElement('p');
    hint.className = 'hint';
    hint.textContent = p.doc;
    hint.id = `param-${p.name}-hint`;
    input.setAttribute('aria-describedby', hint.id);
    div.append(label, input, hint);
    el.params.append(div);
  }
}

// ---------- the sampler and the model ----------

async function startSampler(backend) {
  if (state.sampler) state.sampler.dispose();
  state.model = null;
  el.backendInfo.textContent = '';
  setStatus('Starting the sampler…');
  const s = await createSampler({ backend });
  state.sampler = s;
  s.on((ev) => {
    if (ev.type === 'fatal' && state.sampler === s) {
      showError(`The sampler stopped: ${ev.message}. Restarting it…`);
      startSampler(el.backend.value).then(() => loadModel(el.model.value)).catch(showError);
    }
  });
  return s;
}

function setBusy(loading) {
  el.run.disabled = loading || !state.model;
  el.interpRun.disabled = loading || !state.model;
}

async function loadModel(name) {
  const entry = state.manifest.models.find((m) => m.name === name);
  describeModel(entry);
  fillClasses(entry, el.cls.value);
  fitBatch(entry, state.wantBatch);
  state.wantBatch = undefined;
  const points = isPoints([1, ...entry.shape]);
  el.scoreToggle.hidden = !points;
  el.interpSection.hidden = points;
  if (state.sampler?.samplers) buildParams(paramValues());
  state.model = null;
  setBusy(true);
  clearError();
  el.loadBox.hidden = false;
  el.download.value = 0;
  el.download.max = 1;
  el.downloadLabel.textContent = `Downloading ${name} (${fmtBytes(entry.size)})…`;
  setStatus(`Loading ${name}…`);
  const sampler = state.sampler;
  const p = sampler.loadModel(name, {
    onProgress: ({ phase, loaded, total }) => {
      if (phase === 'download') {
        el.download.max = total || 1;
        el.download.value = loaded;
        el.downloadLabel.textContent = `Downloading ${name}: ${fmtBytes(loaded)} of ${fmtBytes(total)}`;
      } else if (phase === 'cache') {
        el.download.max = 1;
        el.download.value = 1;
        el.downloadLabel.textContent = `${name}: found in this device's cache`;
      } else if (phase === 'build') {
        el.download.max = 1;
        el.download.value = 1;
        el.downloadLabel.textContent = `${name}: checking and preparing (choosing a backend)…`;
      }
    },
  });
  state.loading = p;
  try {
    const m = await p;
    if (state.sampler !== sampler || el.model.value !== name) return null; // superseded
    state.model = m;
    el.loadBox.hidden = true;
    const b = m.backend;
    el.backendInfo.textContent = `${b.name === 'webgpu' ? 'WebGPU' : 'CPU'}${b.detail ? ` (${b.detail})` : ''}: ${b.reason}.`;
    el.statBackend.textContent = b.name === 'webgpu' ? 'WebGPU' : 'CPU';
    setStatus(`${name} is ready${m.cached ? ' (from the cache)' : ''}. Press Sample.`);
    setBusy(false);
    registerServiceWorker(onUpdateReady);
    return m;
  } catch (e) {
    if (state.sampler !== sampler || el.model.value !== name) return null;
    el.loadBox.hidden = true;
    showError(e);
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.textContent = 'Try again';
    retry.addEventListener('click', () => loadModel(el.model.value));
    el.error.append(retry);
    setStatus(`Could not load ${name}. Pick another model or try again.`);
    setBusy(false);
    return null;
  }
}

// ---------- the live view ----------

/** The loaded model's data range (black to white). */
function dataRange() { return state.model?.info?.range; }

let pendingFrame = null;
let rafScheduled = false;

function scheduleDraw(frame) {
  pendingFrame = frame;
  if (rafScheduled) return;
  rafScheduled = true;
  requestAnimationFrame(() => {
    rafScheduled = false;
    const f = pendingFrame;
    pendingFrame = null;
    if (f) drawFrame(f);
  });
}

/** For point models: asks the worker for the score field on a grid at the
 * frame's noise level (one request at a time) and redraws when it arrives. */
function requestField(f) {
  if (!el.showField.checked || state.fieldPending || !(f.sigma > 0)) return;
  const extent = state.extent;
  const xs = fieldGrid(extent);
  const model = state.model;
  const run = state.runId;
  state.fieldPending = true;
  const cls = state.lastRun?.opts.class;
  state.sampler.field(model, f, xs.slice(), { class: cls ?? null }).then((x0) => {
    if (state.runId !== run) return;
    state.field = { xs, x0, alpha: f.alpha, sigma: f.sigma };
    if (state.lastPointFrame) drawPointsFrame(state.lastPointFrame);
  }, () => {}).finally(() => { state.fieldPending = false; });
}

function drawPointsFrame(f) {
  const field = el.showField.checked ? state.field : null;
  drawBatch(el.xt, f.x, f.shape, { extent: state.extent, trail: f.trail, field });
  drawBatch(el.x0, f.x0, f.shape, { extent: state.extent });
}

function drawFrame(f) {
  if (f.x) {
    if (isPoints(f.shape)) {
      // One view for the whole run, wide enough for the starting noise and
      // every prediction so far; x_t keeps a faint trail of its last frame.
      state.extent = Math.max(state.extent || 0, drawBatch(document.createElement('canvas'), f.x, f.shape));
      f.trail = state.prevX;
      state.lastPointFrame = f;
      drawPointsFrame(f);
      state.prevX = f.x;
      requestField(f);
    } else {
      drawBatch(el.xt, f.x, f.shape, { range: dataRange() });
      drawBatch(el.x0, f.x0, f.shape, { range: dataRange() });
    }
  }
  drawPlot();
}

function resetView() {
  state.extent = 0;
  state.prevX = null;
  state.field = null;
  state.lastPointFrame = null;
  state.runId = (state.runId || 0) + 1;
  state.levels = [];
  state.stepMs = [];
  state.stripNext = 0;
  el.strip.replaceChildren();
  const rowXt = document.createElement('div');
  rowXt.className = 'strip-row';
  const rowX0 = document.createElement('div');
  rowX0.className = 'strip-row';
  el.strip.append(rowXt, rowX0);
  state.stripRows = [rowXt, rowX0];
  for (const id of ['statStep', 'statLevel', 'statStepMs', 'statTotal']) el[id].textContent = '–';
  drawPlot();
}

function addThumb(f) {
  const total = f.total > 0 ? f.total : 50;
  // The same keyframes the worker always sends images for (see keyframes).
  const target = Math.floor((state.stripNext * (total - 1) + Math.floor((STRIP_LEN - 1) / 2)) / (STRIP_LEN - 1));
  if (f.index < target && f.index !== total - 1) return;
  if (state.stripNext >= STRIP_LEN) return;
  state.stripNext++;
  const [xtRow, x0Row] = state.stripRows;
  for (const [row, data, what] of [[xtRow, f.x, 'x_t'], [x0Row, f.x0, 'predicted x0']]) {
    const fig = document.createElement('figure');
    const c = document.createElement('canvas');
    if (isPoints(f.shape)) state.extent = Math.max(state.extent || 0, drawBatch(document.createElement('canvas'), f.x, f.shape));
    drawSample(c, data, f.shape, 0, { extent: state.extent, range: dataRange() });
    c.setAttribute('role', 'img');
    c.setAttribute('aria-label', `${what} at step ${f.index + 1}`);
    const cap = document.createElement('figcaption');
    cap.textContent = `${f.index + 1}`;
    fig.append(c, cap);
    row.append(fig);
  }
}

function onStep(f) {
  state.lastLevel = { t: f.t, alpha: f.alpha, sigma: f.sigma, level: f.level };
  state.levels.push(f.level);
  state.stepMs.push(f.stepMs);
  const total = f.total > 0 ? f.total : '?';
  el.statStep.textContent = `${f.index + 1} / ${total}`;
  el.statLevel.textContent = f.level >= 100 ? f.level.toFixed(0) : f.level.toPrecision(3);
  el.statStepMs.textContent = fmtMs(f.stepMs);
  el.statBackend.textContent = f.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  setStatus(`Sampling: step ${f.index + 1} of ${total}…`);
  if (f.x && f.x0) addThumb(f);
  scheduleDraw(f);
}

function drawPlot() {
  const c = el.plot;
  const dpr = window.devicePixelRatio || 1;
  const cssW = c.clientWidth || 600;
  const cssH = c.clientHeight || 180;
  if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
    c.width = Math.round(cssW * dpr);
    c.height = Math.round(cssH * dpr);
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const style = getComputedStyle(c);
  const fg = style.color || '#222';
  ctx.clearRect(0, 0, cssW, cssH);
  const L = 54, R = 10, T = 10, B = 26;
  const w = cssW - L - R, h = cssH - T - B;
  ctx.strokeStyle = fg;
  ctx.globalAlpha = 0.4;
  ctx.strokeRect(L, T, w, h);
  ctx.globalAlpha = 1;
  ctx.fillStyle = fg;
  ctx.font = '11px system-ui, sans-serif';
  const levels = state.levels.filter((v) => v > 0);
  const n = Math.max(state.lastRun?.total || 0, state.levels.length, 2);
  let lo = -2, hi = 2;
  if (levels.length) {
    lo = Math.floor(Math.log10(Math.min(...levels)));
    hi = Math.ceil(Math.log10(Math.max(...levels)));
    if (hi === lo) hi = lo + 1;
  }
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let e = lo; e <= hi; e++) {
    const y = T + h - ((e - lo) / (hi - lo)) * h;
    ctx.fillText(`1e${e}`, L - 4, y);
    ctx.globalAlpha = 0.15;
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(L + w, y); ctx.stroke();
    ctx.globalAlpha = 1;
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  ctx.fillText('step', L + w / 2, T + h + 8);
  ctx.save();
  ctx.translate(9, T + h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText('σ/α', 0, 0);
  ctx.restore();
  ctx.fillText('1', L, T + h + 8);
  ctx.fillText(String(n), L + w, T + h + 8);
  if (!state.levels.length) return;
  ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() || '#c05';
  ctx.fillStyle = ctx.strokeStyle;
  ctx.lineWidth = 2;
  ctx.beginPath();
  state.levels.forEach((v, i) => {
    const x = L + (n > 1 ? (i / (n - 1)) * w : 0);
    const y = T + h - ((Math.log10(Math.max(v, 1e-12)) - lo) / (hi - lo)) * h;
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
  state.levels.forEach((v, i) => {
    const x = L + (n > 1 ? (i / (n - 1)) * w : 0);
    const y = T + h - ((Math.log10(Math.max(v, 1e-12)) - lo) / (hi - lo)) * h;
    ctx.beginPath(); ctx.arc(x, y, 2.5, 0, 2 * Math.PI); ctx.fill();
  });
}

// ---------- running ----------

function num(v, d) {
  const n = Number(v);
  return v === '' || v == null || !isFinite(n) ? d : n;
}

/** The sampling options the form describes (without the callbacks). */
function formOptions(settings) {
  const info = currentSamplerInfo();
  const params = {};
  let eta = 0;
  let sigmas = '';
  for (const k of PARAM_KEYS) {
    if (settings[k] === undefined) continue;
    if (k === 'eta') eta = num(settings.eta, 0);
    else if (k === 'sigmas') sigmas = settings.sigmas;
    else params[k] = num(settings[k], 0);
  }
  const steps = info?.params.some((p) => p.name === 'steps') ? num(settings.steps, 20) : 0;
  return {
    sampler: settings.sampler,
    steps,
    eta,
    sigmas,
    params,
    seed: num(settings.seed, 0),
    batch: Math.min(Number(el.batch.max) || IMAGE_BATCH_MAX, Math.max(1, num(settings.batch, 1))),
    class: settings.class === undefined || settings.class === '' ? null : Number(settings.class),
    guidance: settings.guidance === undefined ? 0 : num(settings.guidance, 1),
  };
}

async function run() {
  if (!state.model) return;
  if (state.job) state.job.cancel();
  if (state.interpJob) state.interpJob.cancel();
  clearError();
  const settings = readSettings();
  const opts = { ...formOptions(settings), imageEveryMs: 30, keyframes: STRIP_LEN, onStep };
  const steps = opts.steps;
  state.lastRun = { settings, total: steps, opts };
  history.replaceState(null, '', settingsURL(settings));
  el.link.value = location.href;
  resetView();
  state.result = null;
  el.png.disabled = el.pngGrid.disabled = true;
  el.cancel.disabled = false;
  setStatus('Sampling…');
  // On a phone the live view sits below the controls: bring it into view.
  const view = document.getElementById('view');
  if (matchMedia('(max-width: 899px)').matches && view.getBoundingClientRect().top > innerHeight * 0.6) {
    view.scrollIntoView({ behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth', block: 'start' });
  }
  const job = state.sampler.sample(state.model, opts);
  state.job = job;
  document.body.dataset.state = 'sampling';
  try {
    const r = await job;
    if (state.job !== job) return;
    state.result = r;
    if (isPoints(r.shape)) {
      state.lastPointFrame = { x: r.x, x0: r.x, shape: r.shape, trail: state.prevX };
      drawPointsFrame(state.lastPointFrame);
    } else {
      drawBatch(el.x0, r.x, r.shape, { range: dataRange() });
      drawBatch(el.xt, r.x, r.shape, { range: dataRange() });
    }
    el.statTotal.textContent = fmtMs(r.totalMs);
    const mean = state.stepMs.length ? r.totalMs / state.stepMs.length : NaN;
    el.statStepMs.textContent = `${fmtMs(mean)} avg`;
    el.statBackend.textContent = r.backend === 'webgpu' ? 'WebGPU' : 'CPU';
    setStatus(`Done: ${r.nfe} network evaluations in ${fmtMs(r.totalMs)}.`);
    el.png.disabled = false;
    el.pngGrid.disabled = r.shape[0] < 2 || isPoints(r.shape);
    document.body.dataset.state = 'done';
  } catch (e) {
    if (state.job !== job) return;
    if (e instanceof DiffuseError && e.kind === 'cancelled') {
      setStatus('Cancelled.');
      document.body.dataset.state = 'cancelled';
    } else {
      showError(e);
      setStatus('Sampling failed.');
      document.body.dataset.state = 'error';
    }
  } finally {
    if (state.job === job) {
      state.job = null;
      el.cancel.disabled = true;
    }
  }
}

// ---------- seed interpolation ----------

let interpTimer = 0;

function stopInterpAnimation() {
  if (interpTimer) clearInterval(interpTimer);
  interpTimer = 0;
}

async function interpolate() {
  if (!state.model) return;
  if (state.job) state.job.cancel();
  if (state.interpJob) state.interpJob.cancel();
  stopInterpAnimation();
  const settings = readSettings();
  const frames = Math.min(32, Math.max(3, num(el.interpFrames.value, 12)));
  const opts = { ...formOptions(settings), batch: frames, seedTo: num(el.seedTo.value, 0) };
  el.interpStrip.replaceChildren();
  document.querySelector('.interp-view').hidden = false;
  el.interpStatus.textContent = `Sampling ${frames} frames from seed ${opts.seed} to seed ${opts.seedTo}…`;
  el.cancel.disabled = false;
  const job = state.sampler.sample(state.model, {
    ...opts,
    imageEveryMs: 250,
    onStep: (f) => {
      el.interpStatus.textContent = `Sampling ${frames} frames: step ${f.index + 1}${f.total > 0 ? ` of ${f.total}` : ''}…`;
      if (f.x0) drawBatch(el.interp, f.x0, f.shape, { cols: frames, range: dataRange() });
    },
  });
  state.interpJob = job;
  try {
    const r = await job;
    if (state.interpJob !== job) return;
    for (let i = 0; i < frames; i++) {
      const c = document.createElement('canvas');
      drawSample(c, r.x, r.shape, i, { range: dataRange() });
      c.setAttribute('role', 'img');
      c.setAttribute('aria-label', `frame ${i + 1} of ${frames}`);
      el.interpStrip.append(c);
    }
    el.interpStatus.textContent = `Done: ${frames} frames in ${fmtMs(r.totalMs)}.`;
    // Ping-pong through the frames (a still strip only, for reduced motion).
    let i = 0, dir = 1;
    const show = () => {
      drawSample(el.interp, r.x, r.shape, i, { range: dataRange() });
      if (i + dir < 0 || i + dir >= frames) dir = -dir;
      i += dir;
    };
    show();
    if (!matchMedia('(prefers-reduced-motion: reduce)').matches) interpTimer = setInterval(show, 120);
  } catch (e) {
    if (state.interpJob !== job) return;
    el.interpStatus.textContent = e instanceof DiffuseError && e.kind === 'cancelled' ? 'Cancelled.' : `Failed: ${e.message}`;
  } finally {
    if (state.interpJob === job) {
      state.interpJob = null;
      if (!state.job) el.cancel.disabled = true;
    }
  }
}

async function savePNG(grid) {
  const r = state.result;
  if (!r) return;
  const blob = await batchToPNG(r.x, r.shape, { index: grid ? -1 : 0, range: dataRange() });
  const s = state.lastRun.settings;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${s.model}-${s.sampler}-${s.steps}steps-seed${s.seed}${s.class ? `-class${s.class}` : ''}${grid ? '-grid' : ''}.png`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function copyLink() {
  const href = state.lastRun ? settingsURL(state.lastRun.settings) : settingsURL(readSettings());
  el.link.value = href;
  try {
    await navigator.clipboard.writeText(href);
    setStatus('Link copied: opening it reproduces this image.');
  } catch {
    el.link.focus();
    el.link.select();
    setStatus('Copy the selected link (the clipboard is not available here).');
  }
}

// ---------- service worker updates ----------

function onUpdateReady(reg) {
  el.update.hidden = false;
  el.updateReload.onclick = () => reg.activate();
}

// ---------- start ----------

function wire() {
  el.form.addEventListener('submit', (e) => { e.preventDefault(); run(); });
  el.cancel.addEventListener('click', () => {
    if (state.job) state.job.cancel();
    if (state.interpJob) state.interpJob.cancel();
  });
  el.interpRun.addEventListener('click', interpolate);
  el.diceTo.addEventListener('click', () => {
    el.seedTo.value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
  });
  el.showField.addEventListener('change', () => {
    if (state.lastPointFrame) {
      drawPointsFrame(state.lastPointFrame);
      if (el.showField.checked && !state.field && state.lastRun) requestField({ ...state.lastPointFrame, ...state.lastLevel });
    }
  });
  el.dice.addEventListener('click', () => {
    el.seed.value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
  });
  el.model.addEventListener('change', () => {
    if (state.job) state.job.cancel();
    loadModel(el.model.value);
  });
  el.sampler.addEventListener('change', () => buildParams());
  el.cls.addEventListener('change', () => updateGuidance());
  el.backend.addEventListener('change', async () => {
    if (state.job) state.job.cancel();
    try {
      await startSampler(el.backend.value);
      await loadModel(el.model.value);
    } catch (e) { showError(e); }
  });
  el.png.addEventListener('click', () => savePNG(false));
  el.pngGrid.addEventListener('click', () => savePNG(true));
  el.copyLink.addEventListener('click', copyLink);
  window.addEventListener('resize', () => drawPlot());
}

async function main() {
  wire();
  resetView();
  const want = urlSettings();
  state.autorun = want.seed !== undefined;
  if (want.seed !== undefined) el.seed.value = want.seed;
  if (want.steps !== undefined) el.steps.value = want.steps;
  state.wantBatch = want.batch;
  if (want.guidance !== undefined) el.guidance.value = want.guidance;
  if (['auto', 'webgpu', 'cpu'].includes(want.backend)) el.backend.value = want.backend;
  el.link.value = location.href;
  try {
    const [manifest] = await Promise.all([fetchManifest(), startSampler(el.backend.value)]);
    state.manifest = manifest;
    if (!manifest.models.length) throw new DiffuseError('No models are shipped with this build (weights/ is empty).', 'user');
    fillModels(manifest, want.model);
    fillSamplers(state.sampler.samplers, want.sampler);
    buildParams(want);
    const m = await loadModel(el.model.value);
    if (m) {
      fillClasses(currentEntry(), want.class);
      if (state.autorun) run();
    }
  } catch (e) {
    showError(e);
    setStatus('The app could not start.');
  }
}

main();
