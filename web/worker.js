// The Web Worker that hosts the Go WebAssembly app (wasm/app). The page never
// runs the model: it talks to this worker through web/diffuse.js.
//
// Messages in:  {type:'init', id, backend}
//               {type:'load', id, entry:{name,url,sha256,size}}
//               {type:'sample', id, model, request, imageEveryMs, keyframes}
//               {type:'field', id, model, point, xs, class}
//               {type:'plan', id, model, request}   (the run a request asks for)
//               {type:'likelihood', id, model, request}  (bits/dim of an image)
//               {type:'cancel', job}      {type:'unload', model}
//               {type:'import', id, files:[File], options}  (bring your own model)
//               {type:'user-models', id}  {type:'forget', id, sha256}
// Messages out: {type:'result', id, value}  {type:'error', id, message, kind}
//               (kind 'internal' also for a Go panic, which Go recovers:
//               the worker stays up and the next request is served)
//               {type:'progress', id, phase, loaded, total}
//               {type:'frame', id, frame}   {type:'fatal', message}
//
// Weights are fetched from the same origin, checked against the manifest's
// size and SHA-256 (in Go), and kept in Cache Storage under a URL that carries
// the hash, so a second visit downloads nothing and a new file never mixes
// with an old one.
//
// A visitor's own model (import) is read here, converted in Go by the CLI's
// converter, and kept in its own cache (USER_CACHE, which the service worker
// never prunes) under its SHA-256 beside a small JSON card, so a reload
// loads it like a cached download, with no conversion.
import './wasm_exec.js';
import { attachSimd, compileGo } from './simd_glue.js';

const WEIGHTS_CACHE = 'diffuse-weights-v1';
const USER_CACHE = 'diffuse-user-models-v1';
// The most a visitor's model may be: a wasm memory is at most 4 GiB, and Go
// holds the files and the converted model at once (core/limits allows 4 GiB
// for one file on disk).
const MAX_FILE_BYTES = 2 * 2 ** 30;
const userURL = (sha, ext) => new URL(`user-models/${sha}.${ext}`, self.location.href).href;

// diffuseYield(cb): run cb in a fresh macrotask, so Go's sampling loop lets
// this worker's message queue run between steps (a MessageChannel round trip
// is not throttled like nested timers are).
const yieldChannel = new MessageChannel();
const yieldQueue = [];
yieldChannel.port1.onmessage = () => { const cb = yieldQueue.shift(); if (cb) cb(); };
self.diffuseYield = (cb) => { yieldQueue.push(cb); yieldChannel.port2.postMessage(0); };

// Load phases, for the page's Performance timeline (diffuse.js turns each
// into a performance mark 'diffuse:NAME'; make bench reads them): absolute
// times (timeOrigin + now), which the page maps onto its own clock. Go marks
// its own phases through diffuseMark too (wasm/app).
const mark = (name) => post({ type: 'mark', name, t: performance.timeOrigin + performance.now() });
self.diffuseMark = mark;
mark('worker-start');

let backend = 'auto';
let goAPI = null;
let simd = { simd: false };

// 'auto' skips software WebGPU adapters (wasm/app/backend.go reads this).
async function detectSoftwareGPU() {
  try {
    const a = self.navigator && navigator.gpu && await navigator.gpu.requestAdapter();
    if (!a) return;
    const info = a.info || {};
    const desc = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
    if (a.isFallbackAdapter || info.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software|basic render/i.test(desc)) {
      self.diffuseSoftwareGPU = desc || 'fallback adapter';
    }
  } catch {
    // no adapter: the Go side finds out itself
  }
}

const goReady = (async () => {
  const go = new Go();
  // The adapter probe, diffuse.wasm's download and compilation, and the
  // SIMD kernels' compilation and warm-up run at once (a first visit waits
  // for the slowest of them, not for their sum).
  const gpuProbed = detectSoftwareGPU().then(() => mark('gpu-probed'));
  const compiled = fetch(new URL('diffuse.wasm', import.meta.url)).then(async (resp) => {
    if (!resp.ok) throw new Error(`could not load diffuse.wasm: HTTP ${resp.status}`);
    const b = await resp.arrayBuffer();
    mark('wasm-fetched');
    return compileGo(b);
  });
  compiled.catch(() => {}); // (awaited below, after the kernels)
  // The SIMD CPU backend's kernel module attaches to Go's imports before Go
  // starts (relaxed SIMD where the browser has it, else plain SIMD128; without
  // either, stubs, and the CPU backend falls back to plain Go). Where the page
  // is cross-origin isolated Go's memory is made shared, and GEMMs also run on
  // helper threads over it.
  const here = (f) => new URL(f, import.meta.url).href;
  simd = await attachSimd(go, [here('kernels_relaxed.wasm'), here('kernels.wasm')],
    { shared: [here('kernels_relaxed_shared.wasm'), here('kernels_shared.wasm')] });
  mark('simd-ready');
  const goModule = await compiled;
  // (wasm/app/backend.go reads diffuseSoftwareGPU: known before Go runs.)
  await gpuProbed;
  // wasm/app/backend.go shows it; known once go.run has seen Go's memory.
  Object.defineProperty(self, 'diffuseSimdThreads', { get: () => simd.threads || 1 });
  const ready = new Promise((resolve) => { self.diffuseGoReady = resolve; });
  const { instance } = await simd.instantiate(goModule);
  mark('wasm-compiled');
  go.run(instance).then(() => {
    self.postMessage({ type: 'fatal', message: 'the Go runtime stopped (see the console)' });
  });
  await ready;
  mark('go-ready');
  goAPI = self.diffuseGo;
  return goAPI;
})();

function userError(message) {
  const e = new Error(message);
  e.kind = 'user';
  return e;
}

// cancel and unload answer nothing; where Go recovered from a panic in one
// (wasm/app's export) it returns a rejected promise, which is logged here.
function logFailure(r) {
  if (r && typeof r.then === 'function') r.then(null, (e) => console.error('diffuse:', e && e.message || e));
}

function post(msg, transfer) { self.postMessage(msg, transfer || []); }

// Download progress is posted at most every 50 ms.
function progressPoster(id, phase) {
  let last = 0;
  return (loaded, total, force) => {
    const now = performance.now();
    if (!force && now - last < 50) return;
    last = now;
    post({ type: 'progress', id, phase, loaded, total });
  };
}

async function openCache(name = WEIGHTS_CACHE) {
  if (!self.caches) return null; // not a secure context: no Cache Storage
  try { return await caches.open(name); } catch { return null; }
}

// Reads the dropped files (File objects, with the folder path the page
// gives them) with progress: {path, bytes} for Go.
async function readFiles(files, id) {
  const progress = progressPoster(id, 'read');
  const total = files.reduce((n, f) => n + f.file.size, 0);
  // Checked before anything is allocated: Go's limit (core/limits
  // MaxWeightsBytes), and what one wasm memory can hold with the copy Go makes.
  for (const { path, file } of files) {
    if (file.size > MAX_FILE_BYTES) throw userError(`${path} is ${(file.size / 1e9).toFixed(1)} GB, more than the ${MAX_FILE_BYTES / 2 ** 30} GiB this page reads`);
  }
  if (total > MAX_FILE_BYTES) throw userError(`these files are ${(total / 1e9).toFixed(1)} GB together, more than the ${MAX_FILE_BYTES / 2 ** 30} GiB this page reads`);
  let loaded = 0;
  const out = [];
  for (const { path, file } of files) {
    const bytes = new Uint8Array(file.size);
    let off = 0;
    const reader = file.stream().getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (off + value.length > bytes.length) throw new Error('the file changed while it was read');
        bytes.set(value, off);
        off += value.length;
        loaded += value.length;
        progress(loaded, total);
      }
    } catch (e) {
      throw userError(`could not read ${path}: ${e.message}`);
    }
    out.push({ path, bytes: off === bytes.length ? bytes : bytes.subarray(0, off) });
  }
  progress(loaded, total, true);
  return out;
}

// A user model's entry as the page lists it (the manifest's fields where
// they apply, and the card the import showed).
function userEntry(card) {
  const i = card.info;
  return {
    name: card.name, title: card.title, user: true, url: userURL(i.sha256, 'safetensors'), sha256: i.sha256, size: i.bytes,
    shape: i.shape, conditional: i.conditional, classes: i.classes, nullClass: i.nullClass, guidance: i.guidance,
    schedule: i.schedule, info: i, source: card.source, from: card.from, added: card.added,
  };
}

async function importModel(msg) {
  const go = await goReady;
  const files = await readFiles(msg.files, msg.id);
  const total = files.reduce((n, f) => n + f.bytes.length, 0);
  post({ type: 'progress', id: msg.id, phase: 'convert', loaded: 0, total });
  const r = await go.import(files, JSON.stringify(msg.options || {}), backend,
    (phase) => post({ type: 'progress', id: msg.id, phase, loaded: total, total }));
  const info = JSON.parse(r.info);
  const { backend: chosen, ...rest } = info;
  const card = { name: r.name, title: msg.title || r.name, source: msg.source || '', from: (msg.options && msg.options.from) || '', info: rest, added: Date.now() };
  post({ type: 'progress', id: msg.id, phase: 'store', loaded: r.bytes.length, total: r.bytes.length });
  const cache = await openCache(USER_CACHE);
  let stored = false;
  if (cache) {
    try {
      await cache.put(userURL(rest.sha256, 'safetensors'), new Response(r.bytes, { headers: { 'Content-Type': 'application/octet-stream' } }));
      await cache.put(userURL(rest.sha256, 'json'), new Response(JSON.stringify(card), { headers: { 'Content-Type': 'application/json' } }));
      stored = true;
    } catch (e) {
      console.warn('diffuse: could not keep the model in browser storage:', e);
    }
  }
  return { entry: userEntry(card), info: rest, backend: chosen, converted: r.converted, stored };
}

async function userModels() {
  const cache = await openCache(USER_CACHE);
  if (!cache) return [];
  const out = [];
  for (const req of await cache.keys()) {
    if (!req.url.endsWith('.json')) continue;
    try {
      const card = await (await cache.match(req)).json();
      if (await cache.match(userURL(card.info.sha256, 'safetensors'))) out.push(userEntry(card));
    } catch {
      await cache.delete(req); // a damaged card: forget it
    }
  }
  return out.sort((a, b) => a.added - b.added);
}

async function forget(sha256) {
  const cache = await openCache(USER_CACHE);
  if (cache) {
    await cache.delete(userURL(sha256, 'safetensors'));
    await cache.delete(userURL(sha256, 'json'));
  }
  if (goAPI) logFailure(goAPI.unload(`user-${sha256.slice(0, 12)}`));
}

async function download(entry, id) {
  const progress = progressPoster(id, 'download');
  let resp;
  try {
    resp = await fetch(entry.url);
  } catch (e) {
    throw userError(`could not download ${entry.name}: ${e.message} (offline?)`);
  }
  if (!resp.ok) throw userError(`could not download ${entry.name}: the server answered HTTP ${resp.status}`);
  const total = entry.size || Number(resp.headers.get('content-length')) || 0;
  const chunks = [];
  let loaded = 0;
  const reader = resp.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      progress(loaded, total);
    }
  } catch (e) {
    throw userError(`the download of ${entry.name} broke off after ${loaded} of ${total} bytes: ${e.message}`);
  }
  progress(loaded, total, true);
  const bytes = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) { bytes.set(c, off); off += c.length; }
  return bytes;
}

// The weights are read from the cache or downloaded while diffuse.wasm is
// still compiling (a first visit's two largest downloads overlap); Go
// checks them once it runs.
async function load(entry, id) {
  const cache = await openCache(entry.user ? USER_CACHE : WEIGHTS_CACHE);
  const tryLoad = async (bytes) => {
    const go = await goReady;
    post({ type: 'progress', id, phase: 'build', loaded: bytes.length, total: bytes.length });
    return go.load(entry.name, bytes, entry.sha256, entry.size ?? -1, backend);
  };
  if (cache) {
    const hit = await cache.match(entry.url);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      mark('weights-fetched');
      post({ type: 'progress', id, phase: 'cache', loaded: bytes.length, total: bytes.length });
      try {
        return { ...JSON.parse(await tryLoad(bytes)), cached: true };
      } catch (e) {
        if (e.kind !== 'user') throw e;
        await cache.delete(entry.url); // a damaged cached copy: fetch it again
      }
    }
  }
  if (entry.user) throw userError(`${entry.name} is no longer in this browser's storage: choose its files again`);
  const bytes = await download(entry, id);
  mark('weights-fetched');
  const info = JSON.parse(await tryLoad(bytes));
  // Kept for the next visit while the page goes on: awaited, writing the
  // file to Cache Storage held the first visit's load result back by about
  // 0.3 s on a busy 2-core machine.
  if (cache) keepWeights(cache, entry.url, bytes);
  return { ...info, cached: false };
}

async function keepWeights(cache, url, bytes) {
  try {
    await cache.put(url, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } }));
    // Older versions of the same file (another hash in the URL) go.
    const path = new URL(url).pathname;
    for (const req of await cache.keys()) {
      if (new URL(req.url).pathname === path && req.url !== url) await cache.delete(req);
    }
  } catch (e) {
    console.warn('diffuse: could not cache the weights:', e);
  }
}

async function sample(msg) {
  const go = await goReady;
  const onFrame = (f) => {
    const transfer = [];
    if (f.x) transfer.push(f.x.buffer);
    if (f.x0) transfer.push(f.x0.buffer);
    post({ type: 'frame', id: msg.id, frame: f }, transfer);
  };
  const r = await go.sample(String(msg.id), msg.model, JSON.stringify(msg.request), onFrame, msg.imageEveryMs ?? 0, msg.keyframes ?? 0);
  return { value: r, transfer: [r.x.buffer] };
}

self.onmessage = async (ev) => {
  const msg = ev.data;
  const reply = (p) => p.then(
    (v) => {
      if (v && v.transfer) post({ type: 'result', id: msg.id, value: v.value }, v.transfer);
      else post({ type: 'result', id: msg.id, value: v });
    },
    (e) => post({ type: 'error', id: msg.id, message: String(e && e.message || e), kind: (e && e.kind) || 'internal' }),
  );
  switch (msg.type) {
    case 'init':
      backend = msg.backend || 'auto';
      reply(goReady.then((go) => ({
        samplers: JSON.parse(go.samplers()),
        webgpu: !!(self.navigator && navigator.gpu),
        simd: simd.simd ? ['relaxed', 'simd128'][simd.index] : false,
        simdThreads: simd.threads || 1,
      })));
      break;
    case 'load':
      reply(load(msg.entry, msg.id));
      break;
    case 'import':
      reply(importModel(msg));
      break;
    case 'user-models':
      reply(userModels());
      break;
    case 'forget':
      reply(forget(msg.sha256));
      break;
    case 'sample':
      reply(sample(msg));
      break;
    case 'field':
      reply(goReady.then(async (go) => {
        const x0 = await go.field(msg.model, msg.point, msg.xs, msg.class ?? null);
        return { value: x0, transfer: [x0.buffer] };
      }));
      break;
    case 'likelihood':
      reply(goReady.then(async (go) => JSON.parse(await go.likelihood(String(msg.id), msg.model, JSON.stringify(msg.request),
        (f) => post({ type: 'frame', id: msg.id, frame: JSON.parse(f) })))));
      break;
    case 'plan':
      reply(goReady.then(async (go) => JSON.parse(await go.plan(msg.model, JSON.stringify(msg.request)))));
      break;
    case 'cancel':
      if (goAPI) logFailure(goAPI.cancel(String(msg.job)));
      break;
    case 'unload':
      if (goAPI) logFailure(goAPI.unload(msg.model));
      break;
    default:
      post({ type: 'error', id: msg.id, message: `unknown message type ${msg.type}`, kind: 'internal' });
  }
};

goReady.catch((e) => post({ type: 'fatal', message: `the sampler could not start: ${e.message}` }));
