// diffuse.js — sample diffusion models in the browser, on the visitor's
// machine. The model runs in a Web Worker (worker.js, hosting the Go
// WebAssembly app); this module is the main-thread API for embedders and for
// this site's pages.
//
//   import { createSampler } from './web/diffuse.js';
//   const s = await createSampler({ backend: 'auto' });      // 'auto' | 'webgpu' | 'cpu'
//   const m = await s.loadModel('mnist', { onProgress: (p) => ... });
//   console.log(m.backend.name, m.backend.reason);           // the backend in use
//   const job = s.sample(m, { sampler: 'ddim', steps: 20, eta: 0, guidance: 3,
//                             class: 7, seed: 42, batch: 4,
//                             onStep: (f) => draw(f.x, f.x0, f.shape) });
//   job.cancel();                                            // or: s.cancel(job)
//   const { x, shape } = await job;                          // Float32Array [B,C,H,W]
//   s.dispose();
//
// A visitor's own model (a diffusers folder, one of our .safetensors files,
// a lucidrains .pt, a score-SDE .pth) is converted in the worker by the same
// Go converter as the CLI and kept in browser storage:
//
//   const u = await s.importModel(files, { options: { from: 'lucidrains', size: 32 } });
//   (await s.userModels()).map((e) => e.name);               // ['user-1a2b3c4d5e6f']
//   await s.forgetModel(u);
//
// Weights come from the same origin (the manifest next to them lists size and
// SHA-256), are verified, and are kept in Cache Storage. Nothing is sent
// anywhere.
//
// A load's phases (worker started, wasm downloaded and compiled, Go running,
// weights read, checked, backend chosen) appear on the page's Performance
// timeline as marks named 'diffuse:PHASE' (tools/bench/pageload.mjs lists them).

export { toImageData, drawBatch, drawSample, batchToPNG } from './render.js';

/** An error with a `kind`: 'user' (a message to show as is: damaged
 * download, bad parameter, WebGPU unavailable), 'cancelled', 'fatal' (the
 * worker died; create a new sampler) or 'internal' (a bug, such as a Go
 * panic, which the worker recovers from: only that call failed, and the
 * sampler and its models stay usable). */
export class DiffuseError extends Error {
  constructor(message, kind = 'internal') {
    super(message);
    this.name = 'DiffuseError';
    this.kind = kind;
  }
}

const defaultManifestURL = new URL('../weights/manifest.json', import.meta.url).href;

/** Fetches the weights manifest: {default, models: [{name, file, url, sha256,
 * size, card, cardURL, title, summary, shape, conditional, classes,
 * nullClass, guidance, schedule, dev}]}. URLs are made absolute. */
export async function fetchManifest(url = defaultManifestURL) {
  let resp;
  try {
    resp = await fetch(url, { cache: 'no-cache' });
  } catch (e) {
    throw new DiffuseError(`could not load the model list: ${e.message}`, 'user');
  }
  if (!resp.ok) throw new DiffuseError(`could not load the model list: HTTP ${resp.status}`, 'user');
  const m = await resp.json();
  for (const e of m.models) {
    e.url = new URL(`${e.file}?sha256=${e.sha256}`, url).href;
    e.cardURL = e.card ? new URL(e.card, url).href : '';
  }
  return m;
}

let nextId = 1;

/** The engine request (core/engine Request) for sample options. */
function toRequest(opts) {
  return {
    sampler: opts.sampler || 'ddim',
    steps: opts.steps | 0,
    eta: +opts.eta || 0,
    guidance: opts.guidance == null ? 0 : +opts.guidance,
    class: opts.class == null || opts.class === '' ? null : opts.class | 0,
    seed: Math.max(0, Math.floor(+opts.seed || 0)),
    seedTo: opts.seedTo == null || opts.seedTo === '' ? null : Math.max(0, Math.floor(+opts.seedTo)),
    batch: opts.batch || 1,
    sigmas: opts.sigmas || '',
    clipDenoised: !!opts.clipDenoised,
    timestepSpacing: opts.timestepSpacing || '',
    params: opts.params || {},
    // modes (core/engine Request.Mode): image/mask as arrays, noise from an inversion
    mode: opts.mode || '',
    image: opts.image ? Array.from(opts.image) : null,
    mask: opts.mask ? Array.from(opts.mask) : null,
    strength: +opts.strength || 0,
    resample: opts.resample | 0,
    jumpLength: opts.jumpLength | 0,
    noise: opts.noise ? Array.from(opts.noise) : null,
    noiseTo: opts.noiseTo ? Array.from(opts.noiseTo) : null,
  };
}

/** A sampling job: await it for the result; cancel() stops it. */
class Job {
  constructor(sampler, id, promise) {
    this.id = id;
    this.sampler = sampler;
    this.promise = promise;
  }
  cancel() { this.sampler.cancel(this); }
  then(a, b) { return this.promise.then(a, b); }
  catch(b) { return this.promise.catch(b); }
  finally(f) { return this.promise.finally(f); }
}

/** One worker, its backend preference, and the models loaded in it. */
export class Sampler {
  constructor(options = {}) {
    this.options = options;
    this.requested = options.backend || 'auto';
    this.manifestURL = options.manifestURL || defaultManifestURL;
    /** The backend of the most recently loaded model: {name, requested,
     * reason, cpuMs, gpuMs}. */
    this.backend = null;
    this.dead = null;
    this._pending = new Map(); // id -> {resolve, reject, onFrame, onProgress}
    this._models = new Map(); // name -> Promise<Model>
    this._listeners = new Set();
    this.worker = new Worker(options.workerURL || new URL('./worker.js', import.meta.url), { type: 'module', name: 'diffuse' });
    this.worker.onmessage = (ev) => this._onMessage(ev.data);
    this.worker.onerror = (ev) => {
      ev.preventDefault?.();
      this._die(`the sampler worker failed: ${ev.message || 'unknown error'}`);
    };
    this._manifest = null;
    this.ready = this._call({ type: 'init', backend: this.requested }).then((v) => {
      /** The sampler registry as Go declares it (core/engine Samplers):
       * [{name, display, summary, stochastic, order, defaultSteps, params}];
       * params.js builds pickers and parameter inputs from it. */
      this.samplers = v.samplers;
      this.webgpuExposed = v.webgpu;
      return this;
    });
  }

  _die(message) {
    if (this.dead) return;
    this.dead = message;
    for (const p of this._pending.values()) p.reject(new DiffuseError(message, 'fatal'));
    this._pending.clear();
    for (const f of this._listeners) f({ type: 'fatal', message });
  }

  /** Listen to sampler-wide events ({type:'fatal', message}). */
  on(f) { this._listeners.add(f); return () => this._listeners.delete(f); }

  _onMessage(msg) {
    if (msg.type === 'fatal') return this._die(msg.message);
    if (msg.type === 'mark') {
      // A load phase in the worker (worker.js), on this page's timeline.
      performance.mark(`diffuse:${msg.name}`, { startTime: Math.max(0, msg.t - performance.timeOrigin) });
      return;
    }
    const p = this._pending.get(msg.id);
    if (!p) return;
    switch (msg.type) {
      case 'result':
        this._pending.delete(msg.id);
        p.resolve(msg.value);
        break;
      case 'error':
        this._pending.delete(msg.id);
        p.reject(new DiffuseError(msg.message, msg.kind));
        break;
      case 'progress':
        if (p.onProgress) p.onProgress({ phase: msg.phase, loaded: msg.loaded, total: msg.total });
        break;
      case 'frame':
        if (p.onFrame) p.onFrame(msg.frame);
        break;
    }
  }

  _call(msg, hooks = {}) {
    if (this.dead) return Promise.reject(new DiffuseError(this.dead, 'fatal'));
    const id = msg.id || nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject, ...hooks });
      this.worker.postMessage({ ...msg, id });
    });
  }

  /** The weights manifest (fetched once). */
  manifest() {
    if (!this._manifest) {
      this._manifest = fetchManifest(this.manifestURL);
      this._manifest.catch(() => { this._manifest = null; });
    }
    return this._manifest;
  }

  /** Loads a model by manifest name (default: the manifest's default),
   * downloading and verifying its weights unless cached. onProgress gets
   * {phase: 'download'|'cache'|'build', loaded, total}. Loading the same name
   * twice shares one download. Resolves to a model handle:
   * {name, entry, info, backend, cached}. */
  loadModel(name, { onProgress } = {}) {
    const key = name || '';
    if (this._models.has(key)) {
      const p = this._models.get(key);
      if (onProgress) p.progress.add(onProgress);
      return p;
    }
    const listeners = new Set(onProgress ? [onProgress] : []);
    const p = (async () => {
      // (Not waiting for the worker's start: it reads or downloads the
      // weights while diffuse.wasm compiles.)
      const man = await this.manifest();
      const entry = man.models.find((m) => m.name === (name || man.default)) ||
        (name && name.startsWith('user-') ? (await this.userModels()).find((m) => m.name === name) : null);
      if (!entry) throw new DiffuseError(`no model named "${name}" in the manifest (have: ${man.models.map((m) => m.name).join(', ')})`, 'user');
      const [info] = await Promise.all([this._call(
        { type: 'load', entry: { name: entry.name, url: entry.url, sha256: entry.sha256, size: entry.size, user: !!entry.user } },
        { onProgress: (pr) => { for (const f of listeners) f(pr); } },
      ), this.ready]);
      const { backend, cached, ...rest } = info;
      this.backend = backend;
      return { name: entry.name, entry, info: rest, backend, cached };
    })();
    p.progress = listeners;
    this._models.set(key, p);
    p.catch(() => { if (this._models.get(key) === p) this._models.delete(key); });
    return p;
  }

  /** Converts and loads a visitor's own model. files: an array of File (or
   * {path, file}: path the file's place in a dropped folder, as
   * webkitRelativePath gives it); options (core/engine ImportOptions):
   * {from: ''|'diffusers'|'lucidrains'|'scoresde'|'toy2d', size, sigma,
   * online}. onProgress gets {phase: 'read'|'convert'|'build'|'store',
   * loaded, total}. The converted file is kept in browser storage under its
   * SHA-256 (userModels lists it, loadModel loads it again without
   * converting). Resolves to a model handle like loadModel's, whose entry
   * has user: true, plus converted (false when the file was one of ours
   * already) and stored (false when the browser refused to keep it).
   * Refusals reject with kind 'user' and a one-line message. */
  async importModel(files, { options = {}, title = '', onProgress } = {}) {
    await this.ready;
    const list = [...files].map((f) => (f instanceof Blob ? { path: f.webkitRelativePath || f.name, file: f } : f));
    if (!list.length) throw new DiffuseError('no files were chosen', 'user');
    const source = list.length === 1 ? list[0].path : list[0].path.split('/')[0];
    const r = await this._call({ type: 'import', files: list, options, title: title || source, source }, { onProgress });
    this.backend = r.backend;
    const m = { name: r.entry.name, entry: r.entry, info: r.info, backend: r.backend, cached: false, converted: r.converted, stored: r.stored };
    const p = Promise.resolve(m);
    p.progress = new Set();
    this._models.set(m.name, p);
    return m;
  }

  /** The visitor's own models kept in this browser: entries like the
   * manifest's ({name, title, user: true, url, sha256, size, shape,
   * conditional, classes, nullClass, guidance, schedule, info, source, from}),
   * oldest first. */
  userModels() {
    return this._call({ type: 'user-models' });
  }

  /** Removes a visitor's model (a handle, an entry or its name) from
   * browser storage and from the worker. */
  async forgetModel(model) {
    const name = typeof model === 'string' ? model : model.name;
    const entry = (await this.userModels()).find((m) => m.name === name) || (typeof model === 'object' ? model.entry || model : null);
    if (!entry || !entry.sha256) throw new DiffuseError(`no model of yours named "${name}" is stored here`, 'user');
    this._models.delete(name);
    await this._call({ type: 'forget', sha256: entry.sha256 });
  }

  /** Forgets a loaded model, freeing its memory in the worker. */
  unloadModel(model) {
    const name = typeof model === 'string' ? model : model.name;
    for (const [k, p] of this._models) {
      p.then((m) => { if (m.name === name) this._models.delete(k); }, () => {});
    }
    this.worker.postMessage({ type: 'unload', model: name });
  }

  /** Starts sampling; returns a Job (a thenable with cancel()). Options:
   * sampler (registry name, default 'ddim'), steps, eta, guidance, class
   * (null/undefined: unconditional), seed (integer < 2^53), batch, sigmas,
   * params ({rtol, atol, snr, corrector_steps, end_time}), timestepSpacing
   * ('' | 'leading' | 'trailing' | 'linspace'), clipDenoised
   * (clip every x̂0 to the data range: static thresholding, Saharia et al.
   * 2022; it changes the method, off by default), seedTo (a second
   * seed: the batch becomes a morph from seed to seedTo), onStep(frame),
   * imageEveryMs (send images at most this often; default 0: every step),
   * keyframes (n: images also on n evenly spaced steps, first to last).
   * A frame is {index, total, nfe, t, alpha, sigma, level, stepMs, backend,
   * step, steps, progress, x, x0, shape}: index counts network evaluations
   * (total of them; -1 when unknown), step the sampler's steps (from 0, of
   * steps; Heun makes two evaluations per step; steps is 0 for the adaptive
   * rk45), progress the estimated fraction done (0…1), level σ/α of x
   * (the start of that step); x and x0 are Float32Array [B,C,H,W] or null.
   * The result is {x, shape, nfe, totalMs, backend, steps, end}: end is
   * the noise point {t, alpha, sigma, level} of x, the final sample (level 0
   * for clean data). */
  sample(model, opts = {}) {
    const id = nextId++;
    const request = toRequest(opts);
    const shape = [request.batch, ...model.info.shape];
    const onStep = opts.onStep;
    const promise = this._call(
      { id, type: 'sample', model: model.name, request, imageEveryMs: opts.imageEveryMs || 0, keyframes: opts.keyframes || 0 },
      { onFrame: onStep ? (f) => { f.shape = shape; onStep(f); } : null },
    );
    return new Job(this, id, promise);
  }

  /** What a run with these options would be, without running it:
   * resolves to {steps, evals, end} (evals: network evaluations, -1 when
   * the sampler is adaptive; end: the noise point of its result), or
   * rejects with kind 'user' for options the run would refuse. */
  plan(model, opts = {}) {
    return this._call({ type: 'plan', model: model.name, request: toRequest(opts) });
  }

  /** The network's prediction of clean data x̂0 at a frame's noise level
   * (point: a frame, or {t, alpha, sigma, level}) for the samples xs
   * (Float32Array, x_t form, whole samples of the model's shape). With it a
   * page can draw the score field ∇log p_t(x) = (α·x̂0 − x)/σ². Resolves to
   * a Float32Array like xs. */
  field(model, point, xs, { class: cls = null } = {}) {
    const p = { t: point.t, alpha: point.alpha, sigma: point.sigma, level: point.level };
    return this._call({ type: 'field', model: model.name, point: p, xs, class: cls });
  }

  /** Bits/dim of one image (Float32Array of the model's shape, data range)
   * through the probability-flow ODE, as `diffuse likelihood` computes it
   * (core/engine Likelihood; same defaults, so the same image and seed give
   * the same number). opts: {seed, probes, rtol, atol, offset, class,
   * onStep({level, nfe, deltaLogP, progress})}. A Job resolving to
   * {bitsPerDim, logP, priorLogP, deltaLogP, nfe}. */
  likelihood(model, image, opts = {}) {
    const id = nextId++;
    const request = { image: Array.from(image), seed: Math.max(0, Math.floor(+opts.seed || 0)), probes: opts.probes | 0,
      rtol: +opts.rtol || 0, atol: +opts.atol || 0, offset: opts.offset == null ? null : +opts.offset,
      class: opts.class == null || opts.class === '' ? null : opts.class | 0 };
    const promise = this._call({ id, type: 'likelihood', model: model.name, request }, { onFrame: opts.onStep || null });
    return new Job(this, id, promise);
  }

  /** Cancels a job (a Job or its id); its promise rejects with kind 'cancelled'. */
  cancel(job) {
    const id = typeof job === 'object' ? job.id : job;
    if (!this.dead) this.worker.postMessage({ type: 'cancel', job: String(id) });
  }

  /** Stops the worker; pending calls reject. */
  dispose() {
    this.worker.terminate();
    this._die('the sampler was disposed');
  }
}

/** Creates a sampler with its own worker and waits until it is ready.
 * options: {backend: 'auto'|'webgpu'|'cpu', manifestURL, workerURL}. */
export async function createSampler(options = {}) {
  const s = new Sampler(options);
  return s.ready;
}

const shared = new Map();

/** One sampler per backend preference, shared by everything on the page
 * (the <diffusion-sampler> elements use it): one worker, one download per
 * model. */
export function sharedSampler(options = {}) {
  const key = `${options.backend || 'auto'} ${options.manifestURL || ''}`;
  if (!shared.has(key)) {
    const p = createSampler(options);
    shared.set(key, p);
    p.then((s) => s.on(() => shared.delete(key)), () => shared.delete(key));
  }
  return shared.get(key);
}
