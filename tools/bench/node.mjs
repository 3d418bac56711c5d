// make bench-gpu: the same benchmark (core.mjs) in Node with WebGPU from the
// npm package `webgpu` (Dawn, the engine inside Chrome), for machines with a
// real GPU and no browser. No page load here (no browser).
//
//   node tools/bench/node.mjs           (from the repository root)
//
// Needs web/node_modules (cd web && npm ci) and a Vulkan loader and driver
// (tools/bench/setup-gpu.sh installs the loader and, for NVIDIA, the GLVND
// libraries). BENCH_DAWN_FLAGS adds Dawn toggles to create() (comma
// separated, e.g. "adapter=NVIDIA"). BENCH_NODE_DIR points at a folder that
// holds webgpu/ and onnxruntime-web/ when web/node_modules is not there (a
// trimmed copy, see setup-gpu.sh). Other settings as for run.mjs.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, HERE, WEB, goroot, envConfig, buildWasm, machine, onnxDir, checkOnnx, markdown } from './lib.mjs';

const SMOKE = process.env.BENCH_SMOKE === '1';
const OUT = path.resolve(process.env.BENCH_OUT || path.join(ROOT, 'dist', 'bench-gpu'));
const NM = path.resolve(process.env.BENCH_NODE_DIR || path.join(WEB, 'node_modules'));
const t0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);

async function setupWebGPU() {
  const { create, globals } = await import(pathToFileURL(path.join(NM, 'webgpu', 'index.js')).href);
  Object.assign(globalThis, globals);
  const flags = (process.env.BENCH_DAWN_FLAGS || '').split(',').filter(Boolean);
  const gpu = create(flags);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu, hardwareConcurrency: 1, userAgent: `Node ${process.version}` }, writable: true, configurable: true });
  // onnxruntime-web's threaded wasm build keeps its heap in a
  // SharedArrayBuffer; Dawn's writeBuffer in Node takes only ArrayBuffer
  // views: copy those first.
  const proto = globals.GPUQueue.prototype;
  const write = proto.writeBuffer;
  proto.writeBuffer = function (buffer, offset, data, dataOffset, size) {
    const sab = typeof SharedArrayBuffer !== 'undefined' && (data instanceof SharedArrayBuffer || data?.buffer instanceof SharedArrayBuffer);
    if (sab) {
      if (data instanceof SharedArrayBuffer) data = new Uint8Array(data);
      const copy = new data.constructor(data.length);
      copy.set(data);
      data = copy;
    }
    return dataOffset === undefined ? write.call(this, buffer, offset, data) : write.call(this, buffer, offset, data, dataOffset, size);
  };
  const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) return { available: false, why: 'requestAdapter returned null (no Vulkan driver? see setup-gpu.sh)' };
  const i = a.info || {};
  const info = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
  const swiftshader = /swiftshader/i.test(`${info.vendor} ${info.architecture} ${info.description}`);
  return { available: true, swiftshader, info, features: [...a.features].sort() };
}

async function startGo(wasmPath) {
  const require = createRequire(import.meta.url);
  globalThis.require = require;
  globalThis.fs = fs;
  globalThis.path = path;
  require(path.join(goroot(), 'lib', 'wasm', 'wasm_exec.js'));
  const glue = fs.readFileSync(path.join(ROOT, 'wasm', 'simd', 'simd_glue.js'), 'utf8');
  const { attachSimd } = await import(`data:text/javascript;base64,${Buffer.from(glue).toString('base64')}`);
  const go = new globalThis.Go();
  const simd = await attachSimd(go, ['kernels_relaxed.wasm', 'kernels.wasm'].map((k) => fs.readFileSync(path.join(ROOT, 'wasm', 'simd', k))));
  const ready = new Promise((r) => { globalThis.diffuseBenchReady = r; });
  const { instance } = await WebAssembly.instantiate(fs.readFileSync(wasmPath), go.importObject);
  go.run(instance);
  await ready;
  return { simd: simd.simd, index: simd.index };
}

async function loadOrt() {
  const dist = path.join(NM, 'onnxruntime-web', 'dist');
  const o = { wasm: null, webgpu: null, errors: [] };
  for (const [k, file] of [['wasm', 'ort.wasm.min.mjs'], ['webgpu', 'ort.webgpu.min.mjs']]) {
    try {
      const m = await import(pathToFileURL(path.join(dist, file)).href);
      m.env.wasm.wasmPaths = `${pathToFileURL(dist).href}/`;
      m.env.wasm.numThreads = 1;
      m.env.wasm.proxy = false;
      m.env.logLevel = 'error';
      o[k] = m;
    } catch (e) {
      o.errors.push(`${file}: ${e}`);
    }
  }
  return o;
}

async function bytes(url) {
  const file = url.startsWith('onnx/') ? path.join(onnxDir(), url.slice(5)) : path.join(ROOT, url);
  return new Uint8Array(fs.readFileSync(file));
}

async function main() {
  const cfg = envConfig();
  if (SMOKE) Object.assign(cfg, { models: cfg.models || ['toy2d', 'mnist'], gpuModels: ['toy2d'], warmup: 0, iters: 1, gpuWarmup: 0, gpuIters: 1, batches: [1, 2], gpuMaxBatchSoft: 2, sampleBatch: 2, sampleSteps: 2, sampleWarmupSteps: 0, samples: null });
  const mach = machine();
  const wasm = process.env.BENCH_WASM || buildWasm(OUT);
  const missing = checkOnnx(cfg.models || ['mnist', 'emoji', 'scoresde-mnist', 'toy2d']);
  const gpu = await setupWebGPU();
  log(`machine: ${mach.cpu}, ${mach.cores} cores; WebGPU: ${JSON.stringify(gpu.info || gpu.why)}`);
  const simd = await startGo(wasm);
  const ort = await loadOrt();
  if (ort.errors.length) log(`ORT load errors: ${ort.errors.join('; ')}`);
  const core = await import(pathToFileURL(path.join(HERE, 'core.mjs')).href);
  const full = { ...core.defaults(gpu), ...cfg };
  fs.mkdirSync(OUT, { recursive: true });
  const base = path.join(OUT, `bench-gpu-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);
  const report = (results, final) => ({
    title: SMOKE ? 'Smoke run, Node (not a measurement)' : 'make bench-gpu (Node, Dawn)', date: new Date().toISOString().slice(0, 10), machine: { ...mach, loadavgEnd: os.loadavg() },
    runtime: `Node ${process.version} with npm webgpu (Dawn) ${JSON.parse(fs.readFileSync(path.join(NM, 'webgpu', 'package.json'), 'utf8')).version}; onnxruntime-web ${ort.wasm?.env.versions?.web || ort.webgpu?.env.versions?.web || '?'}`,
    env: { gpu, simd, ortErrors: ort.errors, crossOriginIsolated: true },
    config: results.config, models: results.models, readbackFloor: results.readbackFloor, notes: final ? [] : ['partial: the run had not finished when this was written'],
    wallSeconds: (Date.now() - t0) / 1000,
  });
  // Written after every model, so a run cut short still leaves its numbers.
  const onModel = (partial) => fs.writeFileSync(`${base}.partial.json`, JSON.stringify(report(partial, false), null, 1));
  const results = await core.run({ bench: globalThis.diffuseBench, bytes, ort, gpu, log, onModel }, full);
  fs.rmSync(`${base}.partial.json`, { force: true });
  const res = report(results, true);
  if (missing.length) res.notes.push(`ONNX missing for ${missing.join(', ')}: ORT not measured there (run tools/bench/make-onnx.sh).`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(res, null, 1));
  const md = markdown(res);
  fs.writeFileSync(`${base}.md`, md);
  console.log(`\n${md}\nwrote ${base}.json and .md (${res.wallSeconds.toFixed(0)} s)`);
  process.exit(0); // Dawn keeps the event loop alive
}

main().catch((e) => { console.error(e); process.exit(1); });
