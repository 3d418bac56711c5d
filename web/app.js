// The sampler app (index.html): model and sampler pickers, a live view of the
// run (x_t and predicted x0, trajectory strip, noise-level plot, timings),
// PNG downloads and shareable links. All the work happens in the worker
// behind diffuse.js.
import { Sampler, fetchManifest, DiffuseError } from './diffuse.js';
import { drawBatch, batchToPNG, drawSample, isPoints, fieldGrid, renderMarkdown } from './render.js';
import { registerServiceWorker } from './sw-register.js';
import { initModes } from './modes.js';
import { StepDial, DIAL_CSS } from './dial.js';
import { FlowFigure, FLOWFIG_CSS } from './flowfig.js';
import { fillSamplerSelect, forModel, samplerInfo, param, takesSteps, ownParams, paramInput, paramHint, requestFields } from './params.js';

// The first visit's load phases on the Performance timeline (with the
// worker's, diffuse.js): 'diffuse:NAME', each once; make bench reads them.
const marked = new Set();
const markOnce = (name) => { if (!marked.has(name)) { marked.add(name); performance.mark(`diffuse:${name}`); } };
markOnce('app-start');

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
  scoreToggle: $('score-field-toggle'), showField: $('show-field'), interpSection: $('interp-section'), flowfigSection: $('flowfig-section'),
  seedTo: $('seed-to'), diceTo: $('dice-to'), interpFrames: $('interp-frames'), interpRun: $('interp-run'),
  interpStatus: $('interp-status'), interp: $('interp'), interpStrip: $('interp-strip'),
  clip: $('clip'), spacing: $('spacing'), samplerHint: $('sampler-hint'), runProgress: $('run-progress'), xtCaption: $('xt-caption'),
  cardDialog: $('card-dialog'), cardBody: $('card-body'), cardTitle: $('card-title'), cardClose: $('card-close'),
  cardOpen: $('card-open'),
  byom: $('byom'), byomFolder: $('byom-folder'), byomFile: $('byom-file'), byomAsk: $('byom-ask'), byomAskWhat: $('byom-ask-what'),
  byomKind: $('byom-kind'), byomSize: $('byom-size'), byomSigma: $('byom-sigma'), byomSigmaField: $('byom-sigma-field'),
  byomEmaField: $('byom-ema-field'), byomOnline: $('byom-online'), byomConvert: $('byom-convert'),
  byomProgressBox: $('byom-progress-box'), byomProgress: $('byom-progress'), byomProgressLabel: $('byom-progress-label'),
  byomError: $('byom-error'), byomCard: $('byom-card'), byomList: $('byom-list'),
};

const STRIP_LEN = 10;

// The step dial (dial.js): every sampler at equal network calls, against RK45.
// (A constructed sheet: the page's CSP refuses inline <style>.)
const dialSheet = new CSSStyleSheet();
dialSheet.replaceSync(DIAL_CSS + FLOWFIG_CSS);
document.adoptedStyleSheets = [...document.adoptedStyleSheets, dialSheet];
const dial = new StepDial($('dial'), () => {
  const o = formOptions(readSettings());
  return { sampler: state.sampler, model: state.model, options: { seed: o.seed, class: o.class, guidance: o.guidance } };
});

// Curved versus straightened paths, 1 call versus 25, on the three flow toys
// (flowfig.js): shown with a 2-D toy model, when the build ships them.
const flowfig = new FlowFigure($('flowfig'), () => ({ sampler: state.sampler, seed: formOptions(readSettings()).seed }));

// A first visit samples at once when the run is cheap: at most this many
// network calls (a fixed grid: adaptive rk45 is never started unasked) and
// a small batch. A link asking for more waits for the Sample button.
const AUTORUN_MAX_EVALS = 100;
const AUTORUN_MAX_BATCH = { image: 4, points: 1024 };
// A first view without a link's steps samples at most this many: DDIM's 50
// would double the wait for the first image, and on the shipped MNIST model
// 25 DDIM steps score as 50 do (README, "Sample quality per sampler").
const FIRST_VIEW_STEPS = 25;

// Seeds are whole numbers the page can hold exactly (the engine's are
// uint64; a JavaScript number is exact up to 2^53 - 1).
const SEED_MAX = Number.MAX_SAFE_INTEGER;

const state = {
  manifest: null,
  sampler: null, // diffuse.js Sampler
  model: null, // loaded model handle
  loading: null, // Promise of the model being loaded
  job: null,
  lastRun: null, // settings of the run on screen
  link: null, // the settings a copied link carries (the run on screen, or the lab's last run)
  result: null,
  levels: [],
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

/** A duration for "about … left". */
function fmtDuration(ms) {
  const s = Math.max(1, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

/** A noise level σ/α as the stats show it. */
function fmtLevel(l) {
  if (!(l > 0)) return '0';
  return l >= 100 ? l.toFixed(0) : l.toPrecision(3);
}

function plural(n, word) { return `${n} ${word}${n === 1 ? '' : 's'}`; }

/** "step 20/20 · 39 network calls" (adaptive samplers: "step 57 (adaptive)"). */
function stepText(step, steps, nfe) {
  const st = steps > 0 ? `step ${step}/${steps}` : `step ${step} (adaptive)`;
  return `${st} · ${plural(nfe, 'network call')}`;
}

// ---------- settings <-> URL ----------

function currentEntry() {
  return state.manifest?.models.find((m) => m.name === el.model.value);
}

// The samplers, their display names, parameters, ranges and defaults are
// the Go registry's (core/sampler, sent by the worker): params.js builds
// the picker and the inputs from it.
function currentSamplerInfo() {
  return samplerInfo(state.sampler?.samplers, el.sampler.value);
}

/** The settings the form shows, as URL-ready strings. */
function readSettings() {
  const info = currentSamplerInfo();
  const s = { model: el.model.value, sampler: el.sampler.value };
  // An adaptive sampler has no step count: none goes into the link or the file name.
  if (takesSteps(info)) s.steps = el.steps.value;
  s.seed = el.seed.value;
  s.batch = el.batch.value;
  s.backend = el.backend.value;
  for (const p of ownParams(info)) {
    const input = document.getElementById(`param-${p.name}`);
    if (input && input.value !== '') s[p.name] = input.value;
  }
  const entry = currentEntry();
  if (entry?.conditional) s.class = el.cls.value;
  if (entry?.guidance && el.cls.value !== '') s.guidance = el.guidance.value;
  if (el.clip.checked) s.clipDenoised = '1';
  if (el.spacing.value && !el.spacing.disabled) s.timestepSpacing = el.spacing.value;
  return s;
}

// One place for link state: the form's settings (readSettings), plus the
// lab's mode fields (mode, strength, image, mask, resample, jump: modes.js
// linkFields, the picture and mask packed by imagelink.js) when a lab run is
// what the link reproduces. urlSettings reads them all back.
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
  const yours = document.createElement('optgroup');
  yours.label = 'Your models';
  for (const m of manifest.models) {
    if (m.dev && !showDev) continue;
    const o = document.createElement('option');
    o.value = m.name;
    // The name only: a select shows its whole text nowhere, so a long title
    // would be cut off ("mnist — class-condi"); the title goes below it.
    // A visitor's own model shows the name of the file or folder it came from.
    o.textContent = m.user ? `${m.title} (yours)` : m.name;
    if (m.title) o.title = m.title;
    (m.user ? yours : el.model).append(o);
  }
  if (yours.children.length) el.model.append(yours);
  el.model.value = manifest.models.some((m) => m.name === wanted) ? wanted : manifest.default;
  el.model.disabled = false;
  el.cards.replaceChildren();
  manifest.models.filter((m) => (!m.dev || showDev) && !m.user).forEach((m, i) => {
    if (i) el.cards.append(', ');
    if (m.cardURL) el.cards.append(cardLink(m, m.name));
    else el.cards.append(m.name);
  });
}

/** The title without its file name ("class-conditional MNIST (UNet2DModel)"). */
function modelTitle(entry) {
  return (entry.title || '').replace(/^[^—]*\.safetensors\s*—\s*/, '').replace(/^[^—]*—\s*/, '');
}

/** A card's first paragraph, when it reads as prose (not a command or a
 * line that introduces a list). */
function cardSummary(entry) {
  if (entry.description) return entry.description; // the card's own line for the page
  const t = entry.summary || '';
  if (!t || /:$/.test(t) || /\s--?\w/.test(t) || /^(bash|python3?|go|bin\/|OUT=)/.test(t)) return '';
  return t.length > 160 ? `${t.slice(0, 157)}…` : t;
}

function describeModel(entry) {
  el.modelInfo.replaceChildren();
  if (!entry) return;
  const [c, h, w] = entry.shape;
  const title = modelTitle(entry);
  if (title) el.modelInfo.append(title, document.createElement('br'));
  const parts = [`${c === 3 ? 'RGB' : c === 1 ? 'greyscale' : `${c}-channel`} ${h}×${w}`,
    entry.conditional ? `${entry.classes} classes` : 'unconditional', fmtBytes(entry.size)];
  el.modelInfo.append(parts.join(' · '));
  const summary = entry.user ? `Your model (${entry.info.arch}, ${entry.info.prediction}), converted in this tab and kept in this browser.` : cardSummary(entry);
  if (summary) el.modelInfo.append(document.createElement('br'), summary);
  if (entry.cardURL) el.modelInfo.append(' ', cardLink(entry, 'Model card'));
  // A card may say which samplers suit the model (a manifest "hint").
  el.samplerHint.textContent = typeof entry.hint === 'string' ? entry.hint : '';
  el.samplerHint.hidden = !el.samplerHint.textContent;
}

const IMAGE_BATCH_MAX = 16;
const POINT_BATCH_MAX = 4096;

/** Point models (2-D toys) sample clouds of hundreds of points; image models
 * a handful of images. */
function fitBatch(entry, wanted) {
  const points = entry && isPoints([1, ...entry.shape]);
  el.batch.max = String(points ? POINT_BATCH_MAX : IMAGE_BATCH_MAX);
  // A value the link asks for stays as it is (checkForm says when it is out
  // of range); switching between point and image models resets the batch
  // to the new kind's default.
  if (wanted !== undefined) { el.batch.value = String(wanted); return; }
  const b = Number(el.batch.value) || 1;
  if (points && b <= IMAGE_BATCH_MAX) el.batch.value = '512';
  if (!points && b > IMAGE_BATCH_MAX) el.batch.value = '1';
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
  fillSamplerSelect(el.sampler, list, wanted);
  el.sampler.disabled = false;
}

/** The current values of the sampler's own parameter inputs. */
function paramValues() {
  const v = {};
  for (const input of el.params.querySelectorAll('input, select')) v[input.name] = input.value;
  return v;
}

/** Rebuilds the inputs of the sampler's own parameters, and sets the
 * steps field to the sampler's default unless `values` (a link's) or the
 * visitor gave it another. */
function buildParams(values = {}) {
  const info = currentSamplerInfo();
  el.params.replaceChildren();
  el.samplerSummary.textContent = info ? info.summary : '';
  const discrete = (currentEntry()?.schedule || '').startsWith('discrete');
  // Only discrete schedules have timesteps to space, and only samplers on a fixed grid use them.
  el.spacing.disabled = !discrete || !takesSteps(info);
  const steps = param(info, 'steps');
  el.steps.disabled = !steps;
  el.steps.title = steps ? '' : 'This sampler chooses its own steps';
  if (steps) {
    el.steps.min = String(steps.min);
    el.steps.max = String(steps.max);
    // The field follows the sampler's default until the visitor types another.
    if (values.steps !== undefined) el.steps.value = values.steps;
    else if (el.steps.value === '' || el.steps.value === el.steps.dataset.default) el.steps.value = String(info.defaultSteps);
    el.steps.dataset.default = String(info.defaultSteps);
  }
  const guidance = param(info, 'guidance');
  if (guidance) {
    el.guidance.min = String(guidance.min);
    el.guidance.max = String(guidance.max);
    if (el.guidance.value === '') el.guidance.value = String(guidance.default);
  }
  setFieldError(el.steps, '');
  for (const p of ownParams(info, { discrete })) {
    const div = document.createElement('div');
    div.className = 'field';
    const label = document.createElement('label');
    label.htmlFor = `param-${p.name}`;
    label.textContent = p.label;
    const input = paramInput(p, { id: `param-${p.name}`, value: values[p.name] });
    const hint = document.createElement('p');
    hint.className = 'hint';
    hint.textContent = paramHint(p);
    hint.id = `param-${p.name}-hint`;
    input.setAttribute('aria-describedby', hint.id);
    div.append(label, input, hint);
    el.params.append(div);
  }
}

// ---------- checking the form ----------
//
// One rule for every numeric field: a value outside the range the engine
// accepts (the sampler's parameter table from Go, engine.Samplers(); the
// page's batch limit; seeds 0…2^53-1) gets an inline message under its
// field, in the words the engine uses ("0 is outside 1…1000"), and nothing
// runs until it is fixed. Nothing is clamped or replaced silently.

function fmtNum(v) { return String(v); }

/** The rules of the fields in use: [{input, label, int, min, max, optional}]. */
function formRules() {
  const info = currentSamplerInfo();
  const rules = [];
  const steps = param(info, 'steps');
  if (steps && !el.steps.disabled) rules.push({ input: el.steps, label: steps.label, int: true, min: steps.min, max: steps.max });
  for (const input of el.params.querySelectorAll('input')) {
    const p = param(info, input.name);
    if (!p || p.kind === 'choice') continue;
    rules.push({ input, label: p.label, int: p.kind === 'int', min: p.min, max: p.max, optional: !!p.modelDefault });
  }
  rules.push({ input: el.seed, label: 'Seed', int: true, min: 0, max: SEED_MAX });
  if (!el.guidanceField.hidden && !el.guidance.disabled) {
    const g = param(info, 'guidance') || { label: 'Guidance scale', min: 0, max: 0 };
    rules.push({ input: el.guidance, label: g.label, min: g.min, max: g.max });
  }
  rules.push({ input: el.batch, label: 'Batch size', int: true, min: 1, max: Number(el.batch.max) });
  return rules;
}

function interpRules() {
  return [
    { input: el.seedTo, label: 'To seed', int: true, min: 0, max: SEED_MAX },
    { input: el.interpFrames, label: 'Frames', int: true, min: Number(el.interpFrames.min), max: Number(el.interpFrames.max) },
  ];
}

/** The message for a field's value, or '' when it is fine. */
function checkValue(rule) {
  const raw = rule.input.value.trim();
  const range = `${fmtNum(rule.min)}…${fmtNum(rule.max)}`;
  const want = `${rule.int ? 'a whole number' : 'a number'} in ${range}`;
  if (raw === '') {
    if (rule.input.validity?.badInput) return `${rule.label}: not a number; enter ${want}.`;
    return rule.optional ? '' : `${rule.label}: empty; enter ${want}.`;
  }
  const v = Number(raw);
  if (!Number.isFinite(v)) return `${rule.label}: "${raw}" is not a number; enter ${want}.`;
  if (v < rule.min || v > rule.max) return `${rule.label}: ${raw} is outside ${range}.`;
  if (rule.int && !Number.isInteger(v)) return `${rule.label}: ${raw} is not a whole number; enter ${want}.`;
  return '';
}

/** Shows (or, with '', clears) the inline message of a field. */
function setFieldError(input, msg) {
  const id = `${input.id}-error`;
  let p = document.getElementById(id);
  if (!msg) {
    if (p) p.remove();
    input.removeAttribute('aria-invalid');
    const d = (input.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && x !== id);
    if (d.length) input.setAttribute('aria-describedby', d.join(' '));
    else input.removeAttribute('aria-describedby');
    return;
  }
  if (!p) {
    p = document.createElement('p');
    p.id = id;
    p.className = 'field-error';
    const field = input.closest('.field') || input.parentElement;
    field.append(p);
    const d = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    input.setAttribute('aria-describedby', [id, ...d].join(' '));
  }
  p.textContent = msg;
  input.setAttribute('aria-invalid', 'true');
}

/** Checks rules (default: the form's), marking each field; returns the
 * failures [{input, msg}]. */
function checkForm(rules = formRules()) {
  const bad = [];
  for (const r of rules) {
    const msg = checkValue(r);
    setFieldError(r.input, msg);
    if (msg) bad.push({ input: r.input, msg });
  }
  // Fields not in use (a disabled Steps, a hidden guidance) keep no message.
  const inUse = [...formRules(), ...interpRules()].map((r) => r.input);
  for (const p of document.querySelectorAll('.field-error')) {
    const input = document.getElementById(p.id.replace(/-error$/, ''));
    if (input && !inUse.includes(input)) setFieldError(input, '');
  }
  return bad;
}

/** Says the form has errors and moves the focus to the first. */
function refuse(bad, what = 'Not run') {
  setStatus(`${what}: ${bad.length === 1 ? bad[0].msg : `${bad.length} fields are out of range (see the messages under them).`}`);
  bad[0].input.focus();
  document.body.dataset.state = 'invalid';
}

// The engine's request fields (RequestError.Field) and the inputs behind them.
function inputForField(field) {
  const map = { steps: el.steps, seed: el.seed, batch: el.batch, guidance: el.guidance, class: el.cls };
  return map[field] || document.getElementById(`param-${field}`);
}

/** A user error from the engine about one field ("steps: 5000 is outside
 * 1…1000") is shown under that field too. */
function showFieldFromEngine(err) {
  const m = /^(\w+): (.*)$/.exec(err?.message || '');
  const input = m && inputForField(m[1]);
  if (!input || input.closest('[hidden]')) return;
  const label = input.labels?.[0]?.textContent || m[1];
  setFieldError(input, `${label}: ${m[2]}`);
}

// ---------- model cards ----------

/** A link to a model's card (the .md file) that opens it in the page. */
function cardLink(entry, text) {
  const a = document.createElement('a');
  a.href = entry.cardURL;
  a.textContent = text;
  a.dataset.card = entry.name;
  return a;
}

async function openCard(entry) {
  const d = el.cardDialog;
  el.cardTitle.textContent = `${entry.name}: model card`;
  el.cardOpen.href = entry.cardURL;
  el.cardBody.replaceChildren();
  el.cardBody.setAttribute('aria-busy', 'true');
  el.cardBody.append(Object.assign(document.createElement('p'), { textContent: 'Loading the card…' }));
  if (!d.open) d.showModal();
  try {
    const resp = await fetch(entry.cardURL);
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const text = await resp.text();
    el.cardBody.replaceChildren(renderMarkdown(text, { base: resp.url || entry.cardURL, headingShift: 1 }));
  } catch (e) {
    el.cardBody.replaceChildren(Object.assign(document.createElement('p'), { textContent: `Could not load the card: ${e.message}` }));
  } finally {
    el.cardBody.removeAttribute('aria-busy');
  }
  el.cardBody.scrollTop = 0;
}

// ---------- the sampler and the model ----------

async function startSampler(backend) {
  if (state.sampler) state.sampler.dispose();
  state.model = null;
  el.backendInfo.textContent = '';
  setStatus('Starting the sampler…');
  // (state.sampler at once: a model's load can be asked for, and its
  // weights downloaded, while the worker is still starting.)
  const s = new Sampler({ backend });
  state.sampler = s;
  s.on((ev) => {
    if (ev.type === 'fatal' && state.sampler === s) {
      showError(`The sampler stopped: ${ev.message}. Restarting it…`);
      startSampler(el.backend.value).then(() => loadModel(el.model.value)).catch(showError);
    }
  });
  return s.ready;
}

function setBusy(loading) {
  el.run.disabled = loading || !state.model;
  el.interpRun.disabled = loading || !state.model;
}

/** Empties the live view when another model is loaded: the last model's
 * pictures, strip, plot, result and link would otherwise stay under the new
 * model's name (seen after importing a model). */
function clearView() {
  if (state.job) state.job.cancel();
  if (state.interpJob) state.interpJob.cancel();
  resetView();
  for (const c of [el.xt, el.x0, el.interp]) c.getContext('2d').clearRect(0, 0, c.width, c.height);
  stopInterpAnimation();
  el.interpStrip.replaceChildren();
  el.interpStatus.textContent = '';
  state.result = null;
  state.lastRun = null;
  state.link = null;
  el.png.disabled = el.pngGrid.disabled = true;
  el.link.value = '';
}

async function loadModel(name) {
  const entry = state.manifest.models.find((m) => m.name === name);
  if (state.viewModel && state.viewModel !== name) clearView();
  state.viewModel = name;
  describeModel(entry);
  fillClasses(entry, el.cls.value);
  fitBatch(entry, state.wantBatch);
  state.wantBatch = undefined;
  const points = isPoints([1, ...entry.shape]);
  el.scoreToggle.hidden = !points;
  el.interpSection.hidden = points;
  el.flowfigSection.hidden = !(points && FlowFigure.available(state.manifest.models.map((m) => m.name)));
  if (state.sampler?.samplers) buildParams(paramValues());
  state.model = null;
  setBusy(true);
  clearError();
  document.body.dataset.state = 'loading';
  el.loadBox.hidden = false;
  el.download.value = 0;
  el.download.max = 1;
  el.downloadLabel.textContent = `${entry.user ? 'Loading' : 'Downloading'} ${name} (${fmtBytes(entry.size)})…`;
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
    modes.reset();
    dial.clear();
    el.loadBox.hidden = true;
    const before = el.sampler.value;
    fillSamplers(forModel(state.sampler.samplers, m.info), before);
    if (el.sampler.value !== before) el.sampler.dispatchEvent(new Event('change'));
    const b = m.backend;
    el.backendInfo.textContent = `${b.name === 'webgpu' ? 'WebGPU' : 'CPU'}${b.detail ? ` (${b.detail})` : ''}: ${b.reason}.` +
      (m.cached ? ` ${name} came from this device's cache.` : '');
    el.statBackend.textContent = b.name === 'webgpu' ? 'WebGPU' : 'CPU';
    setStatus(`${entry.user ? entry.title : name} is ready${m.cached ? ' (from the cache)' : ''}. Press Sample.`);
    setBusy(false);
    // (On the first load the state stays 'loading' until autorun has decided.)
    if (!state.starting) {
      document.body.dataset.state = 'ready';
      registerServiceWorker(onUpdateReady); // (the first load's: see main)
    }
    return m;
  } catch (e) {
    if (state.sampler !== sampler || el.model.value !== name) return null;
    el.loadBox.hidden = true;
    setBusy(false);
    document.body.dataset.state = 'load-failed';
    if (e instanceof DiffuseError && e.kind === 'user' && el.backend.value === 'webgpu' && /WebGPU/.test(e.message)) {
      // Not the model's fault: the backend. Say so, and offer the others.
      showError(`${name} cannot run on WebGPU here: ${e.message.replace(/^WebGPU backend unavailable:\s*/, '')}.`);
      const p = document.createElement('p');
      p.append('Run it on another backend: ');
      for (const [value, label] of [['cpu', 'Use the CPU'], ['auto', 'Choose automatically']]) {
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.textContent = label;
        btn.dataset.backend = value;
        btn.addEventListener('click', () => switchBackend(value));
        p.append(btn, ' ');
      }
      el.error.append(p);
      setStatus(`WebGPU is not available in this browser: switch to the CPU (or automatic) backend to run ${name}.`);
      return null;
    }
    showError(e);
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.textContent = 'Try again';
    retry.addEventListener('click', () => loadModel(el.model.value));
    el.error.append(retry);
    setStatus(`Could not load ${name}. Pick another model or try again.`);
    return null;
  }
}

/** Restarts the sampler on another backend and reloads the model. */
async function switchBackend(value) {
  if (state.job) state.job.cancel();
  el.backend.value = value;
  try {
    await startSampler(value);
    await loadModel(el.model.value);
  } catch (e) { showError(e); }
}

// ---------- your own model ----------

const PICKLE = /\.(pt|pth|ckpt)$/i;
let byomFiles = null; // the chosen files waiting for the questions a pickle needs

function byomFail(e) {
  el.byomProgressBox.hidden = true;
  // One line, whatever the cause: the page never shows a stack.
  el.byomError.textContent = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  el.byomError.hidden = false;
  el.byom.dataset.state = 'failed';
}

/** The card of a visitor's model: what the converter found. */
function byomCard(entry, converted) {
  const i = entry.info;
  const [c, h, w] = i.shape;
  const rows = [
    ['From', `${entry.source}: ${converted ? `converted here${entry.from ? ` (${entry.from})` : ''}` : 'one of our files, taken as it is'}`],
    ['Architecture', i.arch], ['Parameters', i.params.toLocaleString('en')],
    ['Resolution', `${h}×${w}, ${c === 3 ? 'RGB' : c === 1 ? 'greyscale' : `${c} channels`}`],
    ['Classes', i.conditional ? `${i.classes}${i.guidance ? ` (null class ${i.nullClass}: guidance)` : ''}` : 'unconditional'],
    ['Prediction', i.prediction], ['Schedule', i.schedule + (i.defaultSchedule ? ' (none given: DDPM defaults)' : '')],
    ['Size (fp16)', fmtBytes(i.bytes)], ['SHA-256', `${i.sha256.slice(0, 16)}…`],
  ];
  el.byomCard.replaceChildren();
  for (const [k, v] of rows) {
    el.byomCard.append(Object.assign(document.createElement('dt'), { textContent: k }),
      Object.assign(document.createElement('dd'), { textContent: v }));
  }
  el.byomCard.hidden = false;
}

/** Lists the visitor's models with a control to forget each. */
function byomList() {
  el.byomList.replaceChildren();
  for (const m of state.manifest.models.filter((e) => e.user)) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Forget';
    b.dataset.forget = m.name;
    b.title = `Remove ${m.title} from this browser`;
    b.addEventListener('click', () => byomForget(m));
    li.append(`${m.title} (${fmtBytes(m.size)})`, b);
    el.byomList.append(li);
  }
}

/** Puts the visitor's models (from browser storage) beside the shipped ones. */
async function byomRefresh(select) {
  let mine = [];
  try { mine = await state.sampler.userModels(); } catch (e) { console.warn('diffuse: your models:', e); }
  state.manifest.models = [...state.manifest.models.filter((m) => !m.user), ...mine];
  const keep = select || el.model.value;
  fillModels(state.manifest, keep);
  byomList();
}

async function byomForget(entry) {
  try {
    await state.sampler.forgetModel(entry);
  } catch (e) { byomFail(e); return; }
  const was = el.model.value === entry.name;
  await byomRefresh(was ? state.manifest.default : undefined);
  if (was) loadModel(el.model.value);
  setStatus(`${entry.title} was removed from this browser.`);
}

/** The files were chosen (or dropped): a pickle first asks what it is. */
function byomChosen(files) {
  el.byomError.hidden = true;
  el.byomCard.hidden = true;
  files = files.filter((f) => !/(^|\/)\./.test(f.path)); // .DS_Store and the like
  if (files.length === 1 && PICKLE.test(files[0].path)) {
    byomFiles = files;
    const name = files[0].path.split('/').pop();
    el.byomKind.value = /\.pt$/i.test(name) ? 'lucidrains' : 'scoresde';
    if (el.byomKind.value === 'scoresde' && !el.byomSize.value) el.byomSize.value = '28';
    el.byomAskWhat.textContent = `${name} does not record everything the sampler needs: say what it is.`;
    byomAskShow();
    el.byomAsk.hidden = false;
    el.byomSize.focus();
    return;
  }
  el.byomAsk.hidden = true;
  byomImport(files, {});
}

function byomAskShow() {
  const lucid = el.byomKind.value === 'lucidrains';
  el.byomSigmaField.hidden = lucid;
  el.byomEmaField.hidden = !lucid;
}

async function byomImport(files, options) {
  el.byomError.hidden = true;
  el.byomProgressBox.hidden = false;
  el.byomProgress.removeAttribute('value');
  el.byom.dataset.state = 'converting';
  const what = files.length === 1 ? files[0].path : files[0].path.split('/')[0];
  el.byomProgressLabel.textContent = `Reading ${what}…`;
  if (state.job) state.job.cancel();
  const sampler = state.sampler;
  try {
    const m = await sampler.importModel(files, {
      options,
      onProgress: ({ phase, loaded, total }) => {
        el.byomProgress.max = total || 1;
        if (phase === 'read') {
          el.byomProgress.value = loaded;
          el.byomProgressLabel.textContent = `Reading ${what}: ${fmtBytes(loaded)} of ${fmtBytes(total)}`;
        } else {
          el.byomProgress.removeAttribute('value'); // no measure inside one Go call: indeterminate
          el.byomProgressLabel.textContent = {
            convert: `Converting ${what} (${fmtBytes(total)})…`,
            build: `Preparing ${what} on the backend (uploading to the GPU when it is WebGPU)…`,
            store: `Keeping ${what} in this browser…`,
          }[phase] || `${phase}…`;
        }
      },
    });
    el.byomProgressBox.hidden = true;
    byomCard(m.entry, m.converted);
    el.byom.dataset.state = 'done';
    await byomRefresh(m.name);
    if (!m.stored) byomFail(new Error('This browser would not keep the model (storage full or private mode): it is loaded for this visit only.'));
    await loadModel(m.name);
  } catch (e) {
    if (state.sampler === sampler) byomFail(e);
  }
}

/** Files of a drop, folders read whole ({path, file}, path as a folder
 * input's webkitRelativePath). */
async function droppedFiles(dt) {
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      out.push({ path: prefix + entry.name, file: await new Promise((res, rej) => entry.file(res, rej)) });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, `${prefix}${entry.name}/`);
      }
    }
  };
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  // Files alone come as they are; only a dropped folder needs its entries walked.
  if (!entries.some((e) => e.isDirectory)) return [...dt.files].map((f) => ({ path: f.name, file: f }));
  for (const e of entries) await walk(e, '');
  return out;
}

function wireByom() {
  const fromInput = (input) => () => {
    const files = [...input.files].map((f) => ({ path: f.webkitRelativePath || f.name, file: f }));
    input.value = '';
    if (files.length) byomChosen(files);
  };
  el.byomFolder.addEventListener('change', fromInput(el.byomFolder));
  el.byomFile.addEventListener('change', fromInput(el.byomFile));
  el.byomKind.addEventListener('change', byomAskShow);
  el.byomConvert.addEventListener('click', () => {
    if (!byomFiles) return;
    const size = Number(el.byomSize.value);
    if (!Number.isInteger(size) || size < 1) { byomFail(new Error('Give the image size the model was trained at (a whole number of pixels).')); return; }
    const options = { from: el.byomKind.value, size };
    if (options.from === 'scoresde') options.sigma = Number(el.byomSigma.value);
    else options.online = el.byomOnline.checked;
    el.byomAsk.hidden = true;
    byomImport(byomFiles, options);
  });
  const box = document.querySelector('.controls');
  box.addEventListener('dragover', (e) => { e.preventDefault(); el.byom.open = true; el.byom.classList.add('drop'); });
  box.addEventListener('dragleave', () => el.byom.classList.remove('drop'));
  box.addEventListener('drop', async (e) => {
    e.preventDefault();
    el.byom.classList.remove('drop');
    el.byom.open = true; // its progress, card or error show there
    try {
      const files = await droppedFiles(e.dataTransfer);
      if (files.length) byomChosen(files);
    } catch (err) { byomFail(err); }
  });
}

// ---------- the live view ----------

/** The loaded model's data range (black to white). */
function dataRange() { return state.model?.info?.range; }

let pendingFrame = null;
let rafScheduled = false;

function scheduleDraw(frame) {
  frame.runId = state.runId;
  pendingFrame = frame;
  if (rafScheduled) return;
  rafScheduled = true;
  requestAnimationFrame(() => {
    rafScheduled = false;
    const f = pendingFrame;
    pendingFrame = null;
    // A frame of a run that has ended (or been replaced) is never drawn
    // over the final sample.
    if (f && f.runId === state.runId && !state.finished) drawFrame(f);
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
  state.finished = false;
  state.lastIndex = -1;
  state.lastStep = 0;
  pendingFrame = null;
  el.xtCaption.replaceChildren('x', Object.assign(document.createElement('sub'), { textContent: 't' }), ' — the sample being denoised');
  el.runProgress.hidden = true;
  el.runProgress.value = 0;
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
    fig.dataset.index = String(f.index);
    const c = document.createElement('canvas');
    if (isPoints(f.shape)) state.extent = Math.max(state.extent || 0, drawBatch(document.createElement('canvas'), f.x, f.shape));
    drawSample(c, data, f.shape, 0, { extent: state.extent, range: dataRange() });
    c.setAttribute('role', 'img');
    // Captions count network calls (Heun makes two per step).
    c.setAttribute('aria-label', `${what} at network call ${f.index + 1}`);
    const cap = document.createElement('figcaption');
    cap.textContent = `${f.index + 1}`;
    fig.append(c, cap);
    row.append(fig);
  }
}

/** The strip ends on the final sample: the last x_t thumbnail (the start of
 * the last step) becomes the result, or a final column is added when the
 * last step had no thumbnail. */
function finalThumb(r) {
  const [xtRow, x0Row] = state.stripRows;
  const draw = (fig, label) => {
    const c = fig.querySelector('canvas');
    drawSample(c, r.x, r.shape, 0, { extent: state.extent, range: dataRange() });
    c.setAttribute('aria-label', label);
    fig.querySelector('figcaption').textContent = 'final';
    fig.dataset.final = 'true';
  };
  const last = xtRow.lastElementChild;
  const label = `the final sample (noise σ/α ${fmtLevel(r.end?.level)})`;
  if (last && Number(last.dataset.index) === state.lastIndex) {
    draw(last, label);
    return;
  }
  for (const row of [xtRow, x0Row]) {
    const fig = document.createElement('figure');
    fig.append(document.createElement('canvas'), document.createElement('figcaption'));
    fig.querySelector('canvas').setAttribute('role', 'img');
    row.append(fig);
    draw(fig, label);
  }
}

function onStep(f) {
  markOnce('first-step');
  state.lastLevel = { t: f.t, alpha: f.alpha, sigma: f.sigma, level: f.level };
  state.levels.push(f.level);
  state.stepMs.push(f.stepMs);
  state.lastIndex = f.index;
  const step = f.steps > 0 ? f.step + 1 : f.index + 1;
  state.lastStep = step;
  if (state.lastRun && f.total > 0) state.lastRun.total = f.total;
  el.statStep.textContent = stepText(step, f.steps, f.nfe);
  // The level of x_t at the start of this step (the stats say "final" at the end).
  el.statLevel.textContent = fmtLevel(f.level);
  el.statStepMs.textContent = fmtMs(f.stepMs);
  el.statBackend.textContent = f.backend === 'webgpu' ? 'WebGPU' : 'CPU';
  // Progress, and for a long run an estimate of the time left.
  const p = Math.max(0, Math.min(1, f.progress || 0));
  el.runProgress.hidden = false;
  el.runProgress.value = p;
  const elapsed = performance.now() - (state.lastRun?.start || performance.now());
  const left = p > 0.02 && p < 1 && elapsed > 1500 ? ` · about ${fmtDuration((elapsed * (1 - p)) / p)} left` : '';
  const where = f.steps > 0 ? `step ${step} of ${f.steps}` : `step ${step} (rk45 picks its steps)`;
  setStatus(`Sampling: ${where} · ${plural(f.nfe, 'network call')} · ${Math.round(100 * p)}%${left}…`);
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
  ctx.fillText('network call', L + w / 2, T + h + 8);
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
  // (checkForm has refused anything out of range: nothing is clamped here.)
  const steps = takesSteps(info) ? num(settings.steps, info.defaultSteps) : 0;
  return {
    sampler: settings.sampler,
    steps,
    ...requestFields(info, settings),
    seed: num(settings.seed, 0),
    batch: num(settings.batch, 1),
    class: settings.class === undefined || settings.class === '' ? null : Number(settings.class),
    guidance: settings.guidance === undefined ? 0 : num(settings.guidance, 1),
    clipDenoised: settings.clipDenoised === '1',
    timestepSpacing: settings.timestepSpacing || '',
  };
}

/** Samples with the form's settings in the live view; with `lab`
 * ({request, link}: an SDEdit or inpainting run of the lab) the same view
 * shows that run. Resolves to the result, or null when it did not finish. */
async function run({ scroll = true, lab = null } = {}) {
  if (!state.model) return null;
  const bad = checkForm();
  if (bad.length) { refuse(bad); return null; }
  if (state.job) state.job.cancel();
  if (state.interpJob) state.interpJob.cancel();
  clearError();
  const settings = { ...readSettings(), ...(lab ? lab.link : {}) };
  const opts = { ...formOptions(settings), ...(lab ? lab.request : {}), imageEveryMs: 30, keyframes: STRIP_LEN, onStep };
  state.lastRun = { settings, total: opts.steps, opts, start: performance.now() };
  state.link = settings;
  history.replaceState(null, '', settingsURL(settings));
  el.link.value = location.href;
  resetView();
  state.result = null;
  el.png.disabled = el.pngGrid.disabled = true;
  el.cancel.disabled = false;
  setStatus(lab ? `${lab.what}…` : 'Sampling…');
  // On a phone the live view sits below the controls: bring it into view.
  const view = document.getElementById('view');
  // (Not for the run a page starts by itself: a page does not scroll on load.)
  if (scroll && matchMedia('(max-width: 899px)').matches && view.getBoundingClientRect().top > innerHeight * 0.6) {
    view.scrollIntoView({ behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth', block: 'start' });
  }
  markOnce('sample-start');
  const job = state.sampler.sample(state.model, opts);
  state.job = job;
  document.body.dataset.state = 'sampling';
  try {
    const r = await job;
    if (state.job !== job) return null;
    state.result = r;
    // The final sample replaces the last frame everywhere (a frame still
    // waiting for its animation frame is dropped): x_t at the start of the
    // last step is not what the run produced.
    state.finished = true;
    pendingFrame = null;
    if (isPoints(r.shape)) {
      state.lastPointFrame = { x: r.x, x0: r.x, shape: r.shape, trail: state.prevX };
      drawPointsFrame(state.lastPointFrame);
    } else {
      drawBatch(el.x0, r.x, r.shape, { range: dataRange() });
      drawBatch(el.xt, r.x, r.shape, { range: dataRange() });
    }
    const endLevel = r.end ? r.end.level : 0;
    el.xtCaption.textContent = `The final sample (noise σ/α = ${fmtLevel(endLevel)})`;
    el.statLevel.textContent = `${fmtLevel(endLevel)} (final)`;
    const steps = r.steps > 0 ? r.steps : state.lastStep;
    el.statStep.textContent = r.steps > 0 ? stepText(steps, steps, r.nfe) : `${plural(steps, 'adaptive step')} · ${plural(r.nfe, 'network call')}`;
    if (state.stripRows && state.lastIndex >= 0) finalThumb(r);
    el.runProgress.hidden = true;
    drawPlot();
    el.statTotal.textContent = fmtMs(r.totalMs);
    const mean = state.stepMs.length ? r.totalMs / state.stepMs.length : NaN;
    el.statStepMs.textContent = `${fmtMs(mean)} avg`;
    el.statBackend.textContent = r.backend === 'webgpu' ? 'WebGPU' : 'CPU';
    setStatus(`${lab ? `${lab.what} done` : 'Done'}: ${r.steps > 0 ? plural(steps, 'step') : plural(steps, 'adaptive step')}, ${plural(r.nfe, 'network call')} in ${fmtMs(r.totalMs)}.`);
    el.png.disabled = false;
    el.pngGrid.disabled = r.shape[0] < 2 || isPoints(r.shape);
    markOnce('first-image');
    document.body.dataset.state = 'done';
    return r;
  } catch (e) {
    if (state.job !== job) return null;
    if (e instanceof DiffuseError && e.kind === 'cancelled') {
      setStatus('Cancelled.');
      document.body.dataset.state = 'cancelled';
    } else {
      showError(e);
      if (e instanceof DiffuseError && e.kind === 'user') showFieldFromEngine(e);
      setStatus('Sampling failed.');
      document.body.dataset.state = 'error';
    }
    el.runProgress.hidden = true;
    return null;
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
  const bad = [...checkForm(formRules().filter((r) => r.input !== el.batch)), ...checkForm(interpRules())];
  if (bad.length) {
    el.interpStatus.textContent = `Not run: ${bad[0].msg}`;
    bad[0].input.focus();
    return;
  }
  stopInterpAnimation();
  const settings = readSettings();
  const frames = num(el.interpFrames.value, 12);
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
  // An adaptive sampler has no step count (its Steps field is off): the name has none either.
  const steps = s.steps !== undefined ? `-${s.steps}steps` : '';
  a.download = `${s.model}-${s.sampler}${steps}-seed${s.seed}${s.class ? `-class${s.class}` : ''}${grid ? '-grid' : ''}.png`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function copyLink() {
  const href = settingsURL(state.link || readSettings());
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
  el.sampler.addEventListener('change', () => { buildParams(); checkForm(); });
  el.cls.addEventListener('change', () => { updateGuidance(); checkForm(); });
  el.backend.addEventListener('change', () => switchBackend(el.backend.value));
  // Each numeric field says at once when its value is out of range.
  const recheck = (e) => {
    const t = e.target;
    const rule = [...formRules(), ...interpRules()].find((r) => r.input === t);
    if (rule) setFieldError(t, checkValue(rule));
  };
  document.addEventListener('input', recheck);
  document.addEventListener('change', recheck);
  // Model cards open in the page (the link itself is the plain .md file).
  document.addEventListener('click', (e) => {
    const a = e.target.closest?.('a[data-card]');
    if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const entry = state.manifest?.models.find((m) => m.name === a.dataset.card);
    if (!entry) return;
    e.preventDefault();
    openCard(entry);
  });
  el.cardClose.addEventListener('click', () => el.cardDialog.close());
  el.cardDialog.addEventListener('click', (e) => { if (e.target === el.cardDialog) el.cardDialog.close(); });
  el.png.addEventListener('click', () => savePNG(false));
  el.pngGrid.addEventListener('click', () => savePNG(true));
  el.copyLink.addEventListener('click', copyLink);
  window.addEventListener('resize', () => drawPlot());
}

/** The first run of a visit: the settings on screen (the defaults, or a
 * link's), started at once when cheap (AUTORUN_MAX_*) so a visitor sees
 * the process without pressing anything; a link asking for more, or for
 * values out of range, waits with a note. */
async function autorun(lab = null) {
  const name = el.model.value;
  const bad = checkForm();
  if (bad.length) { refuse(bad, 'This link was not run'); return; }
  const opts = { ...formOptions(readSettings()), ...(lab?.request || {}) };
  let plan;
  try {
    plan = await state.sampler.plan(state.model, opts);
  } catch (e) {
    showError(e);
    showFieldFromEngine(e);
    setStatus('This link was not run.');
    document.body.dataset.state = 'invalid';
    return;
  }
  if (state.job || el.model.value !== name) { // the visitor was quicker
    if (!state.job) document.body.dataset.state = 'ready';
    return;
  }
  const points = isPoints([1, ...state.model.info.shape]);
  // A lab link: inversion runs the grid twice (there and back); RePaint
  // repeats blocks of it; likelihood's RK45 takes hundreds of calls.
  const evals = !lab ? plan.evals : lab.link.mode === 'invert' ? 2 * plan.evals
    : plan.evals * Math.max(1, lab.request.resample || 1);
  let why = '';
  if (lab?.link.mode === 'likelihood') why = 'a likelihood takes hundreds of network calls';
  else if (plan.evals < 0) why = `${opts.sampler} chooses its own steps, and can take hundreds of network calls`;
  else if (evals > AUTORUN_MAX_EVALS) why = `it takes ${plural(evals, 'network call')}`;
  else if (opts.batch > AUTORUN_MAX_BATCH[points ? 'points' : 'image']) why = `it samples a batch of ${opts.batch}`;
  if (why) {
    setStatus(lab ? `${name} is ready, and the link's picture is in the lab (${lab.what}). Not started by itself (${why}): press Run in the lab.`
      : `${name} is ready. Not started by itself (${why}): press Sample to run it.`);
    document.body.dataset.state = 'ready';
    return;
  }
  if (lab) {
    document.body.dataset.state = 'ready';
    modes.run({ auto: true }); // the lab's own Run: SDEdit and inpainting show in this view, inversion in the lab
  } else run({ scroll: false });
}

/** The first view's steps: FIRST_VIEW_STEPS where the sampler's default is
 * more. It stands as the default (the field follows the sampler's default
 * again once the sampler or the model changes). */
function firstViewSteps() {
  const info = currentSamplerInfo();
  if (!takesSteps(info) || !(info.defaultSteps > FIRST_VIEW_STEPS) || el.steps.value !== el.steps.dataset.default) return;
  el.steps.value = el.steps.dataset.default = String(FIRST_VIEW_STEPS);
}

// The lab panel (web/modes.js): invert, SDEdit, inpaint, likelihood.
const modes = initModes({ sampler: () => state.sampler, model: () => state.model, options: () => formOptions(readSettings()),
  result: () => state.result, range: dataRange,
  runInView: (lab) => run({ lab, scroll: !lab.auto }),
  cancel: () => { if (state.job) state.job.cancel(); },
  status: () => el.status.textContent,
  // A lab run shown only in the lab (inversion, likelihood): the link reproduces it.
  setLink: (link) => {
    state.link = { ...readSettings(), ...link };
    history.replaceState(null, '', settingsURL(state.link));
    el.link.value = location.href;
  },
  // RePaint's resampling runs DDPM: the form says so, and the link carries it.
  // The step count stays the form's (ddpm's own default is 1000).
  useSampler: (name) => {
    if (el.sampler.value === name) return;
    const steps = el.steps.value;
    el.sampler.value = name;
    el.sampler.dispatchEvent(new Event('change'));
    if (!el.steps.disabled) el.steps.value = steps;
  },
});

async function main() {
  wire();
  wireByom();
  resetView();
  document.body.dataset.state = 'loading';
  const want = urlSettings();
  if (want.seed !== undefined) el.seed.value = want.seed;
  el.clip.checked = ['1', 'true', 'on'].includes(want.clipDenoised);
  if (['leading', 'trailing', 'linspace'].includes(want.timestepSpacing)) el.spacing.value = want.timestepSpacing;
  if (want.steps !== undefined) el.steps.value = want.steps;
  state.wantBatch = want.batch;
  if (want.guidance !== undefined) el.guidance.value = want.guidance;
  if (['auto', 'webgpu', 'cpu'].includes(want.backend)) el.backend.value = want.backend;
  el.link.value = location.href;
  try {
    const samplerReady = startSampler(el.backend.value);
    const manifestP = fetchManifest();
    // The first model's weights download while the worker starts (loadModel
    // below shares this load).
    manifestP.then((man) => {
      const e = man.models.find((x) => x.name === (want.model ?? man.default));
      if (e) state.sampler.loadModel(e.name).catch(() => {});
    }, () => {});
    const [manifest] = await Promise.all([manifestP, samplerReady]);
    state.manifest = manifest;
    if (!manifest.models.length) throw new DiffuseError('No models are shipped with this build (weights/ is empty).', 'user');
    fillModels(manifest, want.model);
    await byomRefresh(want.model);
    fillSamplers(state.sampler.samplers, want.sampler);
    buildParams(want);
    state.starting = true;
    const m = await loadModel(el.model.value);
    if (m) {
      fillClasses(currentEntry(), want.class);
      if (want.steps === undefined) firstViewSteps();
      let lab = null;
      if (want.mode !== undefined) {
        // A lab link (mode, picture, mask, strength): read into the lab; a
        // link that cannot be read says why and runs nothing.
        try {
          lab = modes.fromLink(want);
        } catch (e) {
          showError(`This link's lab settings cannot be used: ${e.message}.`);
          setStatus('This link was not run.');
          document.body.dataset.state = 'invalid';
          state.starting = false;
          registerServiceWorker(onUpdateReady);
          return;
        }
      }
      await autorun(lab);
      // The service worker installs (hashes and caches the site's files)
      // after the first image, not while it is sampled.
      const first = state.job;
      const register = () => registerServiceWorker(onUpdateReady);
      if (first) first.then(register, register);
      else register();
    }
    state.starting = false;
  } catch (e) {
    state.starting = false;
    showError(e);
    setStatus('The app could not start.');
    document.body.dataset.state = 'load-failed';
  }
}

main();
