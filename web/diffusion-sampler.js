// <diffusion-sampler>: a compact live diffusion demo for blog posts.
//
//   <script type="module" src="/web/diffusion-sampler.js"></script>
//   <diffusion-sampler model="mnist" sampler="ddim" steps="20" seed="42"
//                      class="7" guidance="2" autoplay show="xt x0 plot"></diffusion-sampler>
//
// Attributes: model (default: the site's default model), sampler (default
// ddim), steps (default: the sampler's), seed, class, guidance, eta, batch,
// sigmas, backend (auto|webgpu|cpu), autoplay (start when scrolled into
// view), show (any of xt, x0, plot, strip, dial; default "xt x0"; dial is
// the step dial of dial.js: every sampler at 1…32 network calls against
// RK45, with a Run button, as on the page), label (a
// caption), controls (a sampler picker, steps and the sampler's own
// parameters, built from the Go registry as the app's are: params.js).
// Editing modes (the page's lab, modes.js): mode="invert|sdedit|inpaint|
// likelihood" with image (a picture as share links carry it: imagelink.js;
// copy it from a lab link), mask (inpaint: 0 where to regenerate, same
// packing over 0…1), strength (sdedit, 0…1), resample and jump (inpaint:
// RePaint's passes with ddpm). invert and likelihood without an image take
// a sample of the element's own settings first. An input panel shows the
// picture (and the mask in red); invert runs DDIM there and back and shows
// the reconstruction error; likelihood plots Δlog p along the ODE and shows
// bits/dim.
// All elements on a page share one worker and one download per model.
// The element reflects its state in the `state` attribute (loading, ready,
// sampling, done, error) and fires 'step', 'done' and 'error' events;
// `result` holds the last result ({x, shape, nfe, totalMs, backend}).
import { sharedSampler, DiffuseError } from './diffuse.js';
import { drawBatch, drawSample, isPoints } from './render.js';
import { StepDial, DIAL_CSS } from './dial.js';
import { fillSamplerSelect, forModel, samplerInfo, param, ownParams, paramInput, requestFields } from './params.js';
import { unpackValues, quantize } from './imagelink.js';

const MODES = ['invert', 'sdedit', 'inpaint', 'likelihood'];
const MODE_ATTRS = ['mode', 'image', 'mask', 'strength', 'resample', 'jump'];

const CSS = `
:host { display: block; margin: 1.25rem 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --ds-accent: #b6245b; --ds-bg: #f6f5f2; --ds-fg: #1d1c1a; --ds-muted: #5f5b55; --ds-line: #dcd8d0; }
@media (prefers-color-scheme: dark) {
  :host { --ds-accent: #f06a98; --ds-bg: #1f1e1c; --ds-fg: #ecebe7; --ds-muted: #a9a49b; --ds-line: #3a3834; }
}
.card { border: 1px solid var(--ds-line); border-radius: 10px; padding: 0.75rem; background: var(--ds-bg); color: var(--ds-fg); }
.label { font-weight: 600; margin: 0 0 0.5rem; }
.views { display: grid; grid-template-columns: repeat(auto-fit, minmax(8rem, 1fr)); gap: 0.6rem; }
figure { margin: 0; }
.views canvas { display: block; width: 100%; aspect-ratio: 1; height: auto; image-rendering: pixelated; background: var(--ds-line); border-radius: 6px; }
figcaption { font-size: 0.8rem; color: var(--ds-muted); margin-top: 0.2rem; }
.plot { display: block; width: 100%; height: 70px; margin-top: 0.5rem; }
.strip { display: grid; grid-template-columns: repeat(8, minmax(0, 1fr)); gap: 0.25rem; margin-top: 0.5rem; }
.strip canvas { width: 100%; aspect-ratio: 1; height: auto; image-rendering: pixelated; background: #000; border-radius: 3px; display: block; }
.controls { display: flex; flex-wrap: wrap; gap: 0.4rem 0.8rem; margin-top: 0.6rem; font-size: 0.85rem; }
.controls label { display: flex; flex-direction: column; gap: 0.1rem; color: var(--ds-muted); }
.controls select, .controls input { font: inherit; color: var(--ds-fg); background: transparent; border: 1px solid var(--ds-line);
  border-radius: 6px; min-height: 2rem; padding: 0 0.3rem; max-width: 100%; }
.controls input { width: 6rem; }
.bar { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem; margin-top: 0.6rem; }
button { font: inherit; min-height: 2.1rem; padding: 0.2rem 0.8rem; border-radius: 6px; border: 1px solid var(--ds-line);
  background: transparent; color: inherit; cursor: pointer; }
button.play { background: var(--ds-accent); border-color: var(--ds-accent); color: #fff; font-weight: 600; }
button:disabled { opacity: 0.5; cursor: default; }
button:focus-visible { outline: 3px solid #1a5fd6; outline-offset: 2px; }
.meta { font-size: 0.8rem; color: var(--ds-muted); font-variant-numeric: tabular-nums; }
.status { font-size: 0.8rem; color: var(--ds-muted); flex: 1 1 10rem; }
.error { color: #b00020; font-size: 0.85rem; margin: 0.4rem 0 0; }
progress { width: 100%; height: 0.5rem; accent-color: var(--ds-accent); }
[hidden] { display: none !important; }
`;

let sheet = null;
function styles() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS + DIAL_CSS);
  }
  return sheet;
}

function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('aria-') || k === 'role') e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

export class DiffusionSampler extends HTMLElement {
  static get observedAttributes() {
    return ['model', 'sampler', 'steps', 'seed', 'class', 'guidance', 'eta', 'batch', 'sigmas', 'show', 'label', 'controls', ...MODE_ATTRS];
  }

  constructor() {
    super();
    this.result = null;
    this._job = null;
    this._levels = [];
    this._built = false;
  }

  connectedCallback() {
    if (!this._built) this._build();
    this._start();
  }

  disconnectedCallback() {
    if (this._job) this._job.cancel();
    this._dial?.cancel();
    if (this._observer) this._observer.disconnect();
  }

  attributeChangedCallback(name, old, val) {
    if (!this._built || old === val) return;
    if (name === 'show' || name === 'label' || name === 'controls' || name === 'mode') this._layout();
    if (name === 'show' || name === 'label' || name === 'controls') return;
    if (name === 'sampler' || name === 'steps' || name === 'eta' || name === 'sigmas') this._syncControls();
    if (name === 'model') { this._modelP = null; this._start(); return; }
    if (MODE_ATTRS.includes(name) && !this._job) this._showInput();
    this._describe();
    if (this.result || this._job) this.play();
  }

  _set(state) { this.setAttribute('state', state); }

  _show() {
    const v = (this.getAttribute('show') || 'xt x0').toLowerCase();
    return new Set(v.split(/[\s,]+/).filter(Boolean));
  }

  _build() {
    this._built = true;
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [styles()];
    const id = `ds-${Math.random().toString(36).slice(2, 8)}`;
    this._els = {
      label: h('p', { class: 'label' }),
      xtFig: h('figure'), x0Fig: h('figure'), inFig: h('figure'),
      input: h('canvas', { width: 1, height: 1, role: 'img', 'aria-label': 'the input picture' }),
      xt: h('canvas', { width: 1, height: 1, role: 'img', 'aria-label': 'noisy sample x_t' }),
      x0: h('canvas', { width: 1, height: 1, role: 'img', 'aria-label': 'predicted clean image' }),
      plot: h('canvas', { class: 'plot', role: 'img', 'aria-label': 'noise level per step (log scale)' }),
      strip: h('div', { class: 'strip' }),
      progress: h('progress', { max: 1, value: 0, 'aria-label': 'weights download' }),
      play: h('button', { class: 'play', type: 'button', textContent: 'Sample' }),
      reseed: h('button', { type: 'button', textContent: 'New seed' }),
      status: h('span', { class: 'status', role: 'status', id: `${id}-status` }),
      meta: h('div', { class: 'meta' }),
      error: h('p', { class: 'error', role: 'alert' }),
      controls: h('div', { class: 'controls' }),
      dial: h('div', { class: 'dial' }),
    };
    const e = this._els;
    e.xtFig.append(e.xt, h('figcaption', {}, 'x', h('sub', {}, 't'), ' (noisy)'));
    e.x0Fig.append(e.x0, h('figcaption', {}, 'predicted x', h('sub', {}, '0')));
    e.inFig.append(e.input, h('figcaption', {}, 'input'));
    e.play.addEventListener('click', () => this.play());
    e.reseed.addEventListener('click', () => {
      this.setAttribute('seed', String(crypto.getRandomValues(new Uint32Array(1))[0] % 100000));
      if (!this.result && !this._job) this.play();
    });
    e.progress.hidden = true;
    e.error.hidden = true;
    e.inFig.hidden = true;
    const card = h('div', { class: 'card' }, e.label, h('div', { class: 'views' }, e.inFig, e.xtFig, e.x0Fig), e.plot, e.strip,
      e.progress, e.error, e.controls, h('div', { class: 'bar' }, e.play, e.reseed, e.status), e.meta, e.dial);
    root.append(card);
    this._layout();
  }

  _layout() {
    const show = this._show();
    const e = this._els;
    const mode = this._mode();
    if (!mode) e.inFig.hidden = true; // else _showInput and the run show it, once there is a picture
    e.xtFig.hidden = !show.has('xt') || mode === 'likelihood';
    e.x0Fig.hidden = !show.has('x0');
    if (e.xtFig.hidden && e.x0Fig.hidden) e.x0Fig.hidden = false;
    if (mode === 'likelihood') e.x0Fig.hidden = true;
    e.plot.hidden = !show.has('plot') && mode !== 'likelihood';
    e.strip.hidden = !show.has('strip');
    e.dial.hidden = !show.has('dial');
    if (!e.dial.hidden && !this._dial) {
      this._dial = new StepDial(e.dial, () => ({ sampler: this._sampler, model: this._model, options: this._opts() }));
    }
    e.label.textContent = this.getAttribute('label') || '';
    e.label.hidden = !e.label.textContent;
    e.controls.hidden = !this.hasAttribute('controls');
    this._describe();
  }

  /** The registry's samplers (from Go, through the shared worker). */
  _samplers() { return forModel(this._sampler?.samplers || [], this._model?.info); }

  /** Builds the controls (attribute `controls`): a sampler picker, steps,
   * and the sampler's own parameters, from the Go registry; a change sets
   * the matching attribute (or, for the other parameters, the element's
   * params) and restarts a run on screen. */
  _buildControls() {
    const e = this._els;
    const info = samplerInfo(this._samplers(), this._opts().sampler);
    const old = this._paramValues();
    const field = (text, input) => h('label', {}, text, input);
    const picker = h('select', { 'aria-label': 'Sampler' });
    fillSamplerSelect(picker, this._samplers(), this._opts().sampler);
    picker.addEventListener('change', () => this.setAttribute('sampler', picker.value));
    e.controls.replaceChildren(field('Sampler', picker));
    e.picker = picker;
    const steps = param(info, 'steps');
    if (steps) {
      const input = paramInput(steps, { value: String(this._opts().steps || info.defaultSteps) });
      input.addEventListener('change', () => { if (input.checkValidity()) this.setAttribute('steps', input.value); });
      e.controls.append(field(steps.label, input));
    }
    for (const p of ownParams(info, { discrete: this._discrete() })) {
      const attr = p.name === 'eta' || p.name === 'sigmas';
      const given = attr ? this.getAttribute(p.name) ?? undefined : old[p.name];
      const input = paramInput(p, { value: given });
      input.dataset.param = p.name;
      input.addEventListener('change', () => {
        if (input.checkValidity === undefined || input.checkValidity()) {
          if (attr) this.setAttribute(p.name, input.value);
          else if (this.result || this._job) this.play();
        }
      });
      e.controls.append(field(p.label, input));
    }
  }

  _syncControls() { if (this._sampler && this.hasAttribute('controls')) this._buildControls(); }

  /** The values of the sampler's own parameter inputs {name: string}. */
  _paramValues() {
    const v = {};
    for (const i of this._els.controls.querySelectorAll('[data-param]')) v[i.name] = i.value;
    return v;
  }

  _discrete() { return (this._model?.info.schedule || '').startsWith('discrete'); }

  _opts() {
    const a = (n) => this.getAttribute(n);
    const num = (n, d) => (a(n) === null || a(n) === '' || !isFinite(+a(n)) ? d : +a(n));
    return {
      sampler: a('sampler') || 'ddim',
      steps: num('steps', 0), // 0: the sampler's default
      seed: num('seed', 0),
      // `class` doubles as the CSS class attribute: only a plain integer is a label.
      class: /^\s*\d+\s*$/.test(a('class') || '') ? +a('class') : null,
      guidance: num('guidance', 0),
      eta: num('eta', 0),
      batch: num('batch', 0),
      sigmas: a('sigmas') || '',
    };
  }

  _describe(extra) {
    const o = this._opts();
    const info = samplerInfo(this._samplers(), o.sampler);
    const steps = o.steps || info?.defaultSteps;
    const mode = this._mode();
    const parts = [];
    if (mode) {
      const st = this.getAttribute('strength');
      parts.push({ invert: 'DDIM inversion', sdedit: `SDEdit, strength ${st || 0.5}`, inpaint: 'inpainting', likelihood: 'likelihood (bits/dim)' }[mode] || mode);
    }
    if (mode !== 'likelihood') parts.push(`${mode === 'invert' ? 'DDIM' : info?.display || o.sampler}${o.eta && mode !== 'invert' ? ` η=${o.eta}` : ''}`);
    if (mode !== 'likelihood' && (!info || param(info, 'steps'))) parts.push(`${steps ?? 'default'} steps`);
    if (o.sigmas) parts.push(`${o.sigmas} σ`);
    parts.push(`seed ${o.seed}`);
    if (o.class !== null) parts.push(`class ${o.class}`);
    if (o.guidance && o.guidance !== 1) parts.push(`guidance ${o.guidance}`);
    if (extra) parts.push(extra);
    this._els.meta.textContent = parts.join(' · ');
  }

  _error(err) {
    this._els.error.textContent = err instanceof Error ? err.message : String(err);
    this._els.error.hidden = false;
    this._set('error');
    this.dispatchEvent(new CustomEvent('error', { detail: err }));
  }

  async _start() {
    if (this._modelP) return;
    this._set('loading');
    this._els.play.disabled = true;
    this._els.play.textContent = this._mode() ? 'Run' : 'Sample';
    this._els.status.textContent = 'Loading…';
    const backend = this.getAttribute('backend') || 'auto';
    this._modelP = (async () => {
      this._sampler = await sharedSampler({ backend });
      return this._sampler.loadModel(this.getAttribute('model') || undefined, {
        onProgress: ({ phase, loaded, total }) => {
          const p = this._els.progress;
          p.hidden = phase !== 'download';
          p.max = total || 1;
          p.value = loaded;
          this._els.status.textContent = phase === 'download' ? `Downloading weights… ${Math.round((100 * loaded) / (total || 1))}%` : 'Preparing…';
        },
      });
    })();
    try {
      this._model = await this._modelP;
      this._dial?.clear();
      this._buildControls();
      this._describe();
      this._els.progress.hidden = true;
      this._els.play.disabled = false;
      this._els.status.textContent = 'Ready.';
      this._set('ready');
      if (!this._showInput()) return;
      if (this.hasAttribute('autoplay')) this._autoplay();
    } catch (err) {
      this._modelP = null;
      this._els.progress.hidden = true;
      this._els.play.disabled = false;
      this._els.status.textContent = '';
      this._error(err);
    }
  }

  _autoplay() {
    if (!('IntersectionObserver' in window)) { this.play(); return; }
    this._observer = new IntersectionObserver((entries) => {
      if (entries.some((en) => en.isIntersecting)) {
        this._observer.disconnect();
        if (!this.result && !this._job) this.play();
      }
    }, { rootMargin: '100px' });
    this._observer.observe(this);
  }

  /** Starts (or restarts) sampling with the current attributes. */
  async play() {
    if (!this._model) {
      this._modelP = null;
      await this._start();
      if (!this._model) return;
    }
    if (this._job) this._job.cancel();
    const o = this._opts();
    // The sampler's own parameters: eta and sigmas from the attributes, the
    // rest from the controls; none a sampler does not take.
    const info = samplerInfo(this._samplers(), o.sampler);
    if (info) {
      const f = requestFields(info, { eta: this.getAttribute('eta'), sigmas: this.getAttribute('sigmas'), ...this._paramValues() });
      o.eta = f.eta;
      o.sigmas = f.sigmas;
      o.params = f.params;
    }
    // Fit the attributes to the model, so one page works whatever the
    // site's default model is: no label for an unconditional model, a label
    // where one is required, guidance only where the model has a null class.
    const mi = this._model.info;
    if (!mi.conditional) o.class = null;
    else if (o.class === null && mi.nullClass < 0) o.class = 0;
    if (o.class !== null && mi.conditional && o.class >= mi.classes) o.class = o.class % mi.classes;
    if (!mi.guidance || o.class === null) o.guidance = 0;
    const points = isPoints([1, ...mi.shape]);
    o.batch = Math.min(points ? 4096 : 16, Math.max(1, o.batch || (points ? 512 : 1)));
    this._extent = 0;
    const e = this._els;
    e.error.hidden = true;
    this._levels = [];
    e.strip.replaceChildren();
    this._stripNext = 0;
    this._describe();
    this._set('sampling');
    e.play.textContent = 'Restart';
    const mode = this._mode();
    if (mode) { await this._playMode(mode, o); return; }
    e.status.textContent = 'Sampling…';
    const job = this._sampler.sample(this._model, {
      ...o,
      imageEveryMs: 30,
      keyframes: 8,
      onStep: (f) => this._onStep(f),
    });
    this._job = job;
    try {
      const r = await job;
      if (this._job !== job) return;
      this.result = r;
      this._final(r);
      e.status.textContent = `Done in ${(r.totalMs / 1000).toFixed(1)} s (${r.steps > 0 ? `${r.steps} steps, ` : ''}${r.nfe} network calls).`;
      this._describe(`${r.backend === 'webgpu' ? 'WebGPU' : 'CPU'}, ${(r.totalMs / Math.max(1, r.nfe)).toFixed(0)} ms/call`);
      e.play.textContent = 'Sample again';
      this._set('done');
      this.dispatchEvent(new CustomEvent('done', { detail: r }));
    } catch (err) {
      if (this._job !== job) return;
      if (err instanceof DiffuseError && err.kind === 'cancelled') {
        e.status.textContent = 'Stopped.';
        this._set('ready');
      } else this._error(err);
    } finally {
      if (this._job === job) this._job = null;
    }
  }

  /** Draws a finished run's x in the views; the strip ends on it, not on
   * x_t at the start of the last step. */
  _final(r) {
    const e = this._els;
    const ext = { extent: this._extent || undefined, range: this._model.info.range };
    if (!e.xtFig.hidden) drawBatch(e.xt, r.x, r.shape, ext);
    drawBatch(e.x0, r.x, r.shape, ext);
    if (!e.strip.hidden) {
      let c = e.strip.lastElementChild;
      if (!c || c.dataset.index !== String(this._lastIndex)) {
        c = h('canvas', { role: 'img' });
        e.strip.append(c);
      }
      drawSample(c, r.x, r.shape, 0, ext);
      c.setAttribute('aria-label', 'the final sample');
    }
  }

  /** The editing mode ('' for sampling). */
  _mode() { return (this.getAttribute('mode') || '').trim().toLowerCase(); }

  /** The mode's picture and mask from the attributes ({image, mask}; image
   * null where a sample of the element's settings is taken first). Throws
   * a DiffuseError saying what is wrong. */
  _modeInputs(mode) {
    const mi = this._model.info;
    const [C, H, W] = mi.shape;
    const a = (n) => this.getAttribute(n);
    const fail = (msg) => { throw new DiffuseError(msg, 'user'); };
    if (!MODES.includes(mode)) fail(`mode "${mode.slice(0, 40)}" is not one of ${MODES.join(', ')}`);
    if (isPoints([1, ...mi.shape])) fail(`${mode} needs a model of pictures; this one draws points`);
    try {
      const image = a('image') ? unpackValues(a('image'), C * H * W, mi.range, 'image') : null;
      if (!image && (mode === 'sdedit' || mode === 'inpaint')) fail(`mode ${mode} needs an image attribute`);
      let mask = null;
      if (mode === 'inpaint') {
        if (!a('mask')) fail('mode inpaint needs a mask attribute');
        mask = unpackValues(a('mask'), H * W, [0, 1], 'mask');
      }
      return { image, mask };
    } catch (err) {
      throw err instanceof DiffuseError ? err : new DiffuseError(err.message, 'user');
    }
  }

  /** Shows the mode's picture before a run (hidden until a run has sampled
   * it when the element samples its own); false, with the error shown,
   * when the attributes cannot be read. */
  _showInput() {
    const mode = this._mode();
    if (!mode || !this._model) return true;
    try {
      const { image, mask } = this._modeInputs(mode);
      this._els.inFig.hidden = !image;
      if (image) this._drawInput(image, mask);
      return true;
    } catch (err) {
      this._error(err);
      return false;
    }
  }

  /** The input panel: the picture, with the mask's regenerated part in red. */
  _drawInput(image, mask) {
    const mi = this._model.info;
    const c = this._els.input;
    drawBatch(c, image, [1, ...mi.shape], { range: mi.range });
    if (!mask) return;
    const ctx = c.getContext('2d');
    const img = ctx.getImageData(0, 0, c.width, c.height);
    const [, H, W] = mi.shape;
    if (c.width !== W || c.height !== H) return;
    for (let i = 0; i < H * W; i++) {
      if (mask[i] >= 0.5) continue;
      img.data[4 * i] = Math.round(0.45 * img.data[4 * i] + 0.55 * 255);
      img.data[4 * i + 1] = Math.round(0.45 * img.data[4 * i + 1]);
      img.data[4 * i + 2] = Math.round(0.45 * img.data[4 * i + 2]);
    }
    ctx.putImageData(img, 0, 0);
  }

  /** Runs one job of a mode with its frames in the views; resolves to its
   * result, or to null when a newer run replaced it. */
  async _modeJob(job) {
    this._job = job;
    this._stripNext = 0;
    try {
      const r = await job;
      return this._job === job ? r : null;
    } finally {
      if (this._job === job) this._job = null;
    }
  }

  /** invert, sdedit, inpaint or likelihood with the element's settings. */
  async _playMode(mode, o) {
    const e = this._els;
    const mi = this._model.info;
    const frames = { imageEveryMs: 30, keyframes: 8, onStep: (f) => this._onStep(f) };
    const a = (n) => this.getAttribute(n);
    const num = (n, d) => (a(n) === null || a(n) === '' || !isFinite(+a(n)) ? d : +a(n));
    const token = {};
    this._modeRun = token;
    const live = () => this._modeRun === token;
    try {
      let { image, mask } = this._modeInputs(mode);
      if (!image) { // a picture of the model's own: the element's settings, one sample
        e.status.textContent = 'Sampling the picture to start from…';
        const r = await this._modeJob(this._sampler.sample(this._model, { ...o, batch: 1 }));
        if (!r || !live()) return;
        image = quantize(r.x.slice(0, r.x.length), mi.range); // 8 bits, as a link carries it
        this._levels = [];
        e.strip.replaceChildren();
      }
      this._els.inFig.hidden = false;
      this._drawInput(image, mask);
      const t0 = performance.now();
      if (mode === 'likelihood') {
        const pts = [];
        e.status.textContent = 'Likelihood: solving the probability-flow ODE…';
        const r = await this._modeJob(this._sampler.likelihood(this._model, image, { seed: o.seed, class: o.class, onStep: (f) => {
          pts.push(f);
          this._plotLikelihood(pts);
          e.status.textContent = `Likelihood: ${Math.round(100 * f.progress)}% of the ODE, ${f.nfe} network calls…`;
        } }));
        if (!r || !live()) return;
        this.result = r;
        e.status.textContent = `${r.bitsPerDim.toFixed(3)} bits/dim (log p = ${r.logP.toFixed(1)} nats; ${r.nfe} network calls, ${((performance.now() - t0) / 1e3).toFixed(1)} s).`;
        this._describe(`${r.bitsPerDim.toFixed(3)} bits/dim`);
      } else if (mode === 'invert') {
        const base = { ...o, batch: 1, sampler: 'ddim', eta: 0, sigmas: '', params: {} };
        e.status.textContent = 'Inverting: DDIM from the picture to its noise…';
        const inv = await this._modeJob(this._sampler.sample(this._model, { ...base, mode: 'invert', image, ...frames }));
        if (!inv || !live()) return;
        e.status.textContent = 'Regenerating from the inverted noise…';
        const back = await this._modeJob(this._sampler.sample(this._model, { ...base, noise: inv.x, ...frames }));
        if (!back || !live()) return;
        let s = 0;
        for (let i = 0; i < image.length; i++) s += (back.x[i] - image[i]) ** 2;
        const rmse = Math.sqrt(s / image.length);
        this.result = { ...back, inverted: inv.x, rmse };
        this._final(back);
        e.status.textContent = `Inverted in ${inv.nfe} network calls and regenerated in ${back.nfe}: reconstruction RMSE ${rmse.toFixed(4)}.`;
        this._describe(`RMSE ${rmse.toFixed(4)}`);
      } else {
        const req = { ...o, mode, image, ...frames };
        if (mode === 'sdedit') req.strength = num('strength', 0.5);
        if (mode === 'inpaint') {
          req.mask = mask;
          const passes = Math.round(num('resample', 1));
          if (passes > 1) Object.assign(req, { sampler: 'ddpm', eta: 0, sigmas: '', params: {}, resample: passes, jumpLength: Math.round(num('jump', 10)) });
        }
        e.status.textContent = `${mode === 'sdedit' ? 'SDEdit' : 'Inpainting'}…`;
        const r = await this._modeJob(this._sampler.sample(this._model, req));
        if (!r || !live()) return;
        this.result = r;
        this._final(r);
        e.status.textContent = `Done in ${(r.totalMs / 1000).toFixed(1)} s (${r.nfe} network calls).`;
        this._describe(`${r.backend === 'webgpu' ? 'WebGPU' : 'CPU'}`);
      }
      e.play.textContent = 'Run again';
      this._set('done');
      this.dispatchEvent(new CustomEvent('done', { detail: this.result }));
    } catch (err) {
      if (!live()) return;
      if (err instanceof DiffuseError && err.kind === 'cancelled') {
        e.status.textContent = 'Stopped.';
        this._set('ready');
      } else this._error(err);
    }
  }

  /** Likelihood: Δlog p accumulated along the ODE against log₁₀ σ/α. */
  _plotLikelihood(pts) {
    const c = this._els.plot;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 300, hh = c.clientHeight || 70;
    c.width = Math.round(w * dpr);
    c.height = Math.round(hh * dpr);
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (pts.length < 2) return;
    const xs = pts.map((p) => Math.log10(Math.max(p.level, 1e-6))), ys = pts.map((p) => p.deltaLogP);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(0, ...ys), Math.max(0, ...ys)];
    const accent = getComputedStyle(this).getPropertyValue('--ds-accent').trim() || '#b6245b';
    ctx.strokeStyle = accent;
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach((p, i) => {
      const x = 4 + ((xs[i] - x0) / (x1 - x0 || 1)) * (w - 8);
      const y = 4 + (1 - (ys[i] - y0) / (y1 - y0 || 1)) * (hh - 8);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  }

  /** Stops a running sample. */
  stop() { if (this._job) this._job.cancel(); }

  _onStep(f) {
    this._levels.push(f.level);
    this._lastIndex = f.index;
    const e = this._els;
    // Steps, not network calls: Heun makes two calls per step.
    e.status.textContent = f.steps > 0 ? `Step ${f.step + 1} of ${f.steps}…` : `Step ${f.index + 1} (adaptive)…`;
    if (f.x) {
      if (isPoints(f.shape)) this._extent = Math.max(this._extent || 0, drawBatch(document.createElement('canvas'), f.x, f.shape));
      const ext = { extent: this._extent || undefined, range: this._model.info.range };
      if (!e.xtFig.hidden) drawBatch(e.xt, f.x, f.shape, ext);
      drawBatch(e.x0, f.x0, f.shape, ext);
      if (!e.strip.hidden) {
        const total = f.total > 0 ? f.total : 20;
        if (f.index >= Math.round((this._stripNext * (total - 1)) / 7) || f.index === total - 1) {
          this._stripNext++;
          const c = h('canvas', { role: 'img', 'aria-label': `x_t at network call ${f.index + 1}` });
          c.dataset.index = String(f.index);
          drawSample(c, f.x, f.shape, 0, { extent: this._extent || undefined, range: this._model.info.range });
          e.strip.append(c);
        }
      }
    }
    if (!e.plot.hidden) this._plot(f.total);
    this.dispatchEvent(new CustomEvent('step', { detail: f }));
  }

  _plot(total) {
    const c = this._els.plot;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 300, hh = c.clientHeight || 70;
    c.width = Math.round(w * dpr);
    c.height = Math.round(hh * dpr);
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const lv = this._levels.map((v) => Math.log10(Math.max(v, 1e-6)));
    const lo = Math.min(...lv, -2), hi = Math.max(...lv, 2);
    const n = Math.max(total > 0 ? total : lv.length, 2);
    const accent = getComputedStyle(this).getPropertyValue('--ds-accent').trim() || '#b6245b';
    ctx.strokeStyle = accent;
    ctx.fillStyle = accent;
    ctx.lineWidth = 2;
    ctx.beginPath();
    lv.forEach((v, i) => {
      const x = 4 + (i / (n - 1)) * (w - 8);
      const y = 4 + (1 - (v - lo) / (hi - lo)) * (hh - 8);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  }
}

if (!customElements.get('diffusion-sampler')) customElements.define('diffusion-sampler', DiffusionSampler);
