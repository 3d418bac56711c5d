// The benchmark page: starts the bench wasm (tools/bench/wasm) with the SIMD
// kernels attached (and their GEMM helper threads: the page is cross-origin
// isolated), loads onnxruntime-web from this origin (/ort/, out of
// web/node_modules; no CDN) with one wasm thread and again with as many
// threads as our SIMD backend has, and exposes
// window.runBench(cfg) for run.mjs, which resolves to core.mjs's JSON.
import { attachSimd } from '/simd/simd_glue.js';
import * as core from '/core.mjs';

const logEl = document.getElementById('log');
function log(s) {
  console.log(s);
  logEl.textContent += `${s}\n`;
}

async function startGo() {
  const go = new globalThis.Go();
  const simd = await attachSimd(go, ['/simd/kernels_relaxed.wasm', '/simd/kernels.wasm'],
    { shared: ['/simd/kernels_relaxed_shared.wasm', '/simd/kernels_shared.wasm'] });
  const ready = new Promise((r) => { globalThis.diffuseBenchReady = r; });
  const bytes = await (await fetch('/bench.wasm')).arrayBuffer();
  const { instance } = await simd.instantiate(bytes);
  go.run(instance);
  await ready;
  return simd;
}

async function gpuInfo() {
  if (!navigator.gpu) return { available: false, why: 'no navigator.gpu' };
  const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) return { available: false, why: 'requestAdapter returned null' };
  const i = a.info || {};
  const info = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
  const swiftshader = /swiftshader/i.test(`${info.vendor} ${info.architecture} ${info.description}`);
  return { available: true, swiftshader, info, features: [...a.features].sort(),
    limits: { maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize, maxComputeWorkgroupStorageSize: a.limits.maxComputeWorkgroupStorageSize } };
}

async function loadOrt() {
  const o = { wasm: null, wasmThreads: null, webgpu: null, errors: [] };
  // ORT's wasm backend reads numThreads once per module instance: the
  // threaded peer of our SIMD threads is a second instance of the module
  // (another URL), with as many threads as we use.
  for (const [k, file, threads] of [['wasm', 'ort.wasm.min.mjs', 1], ['wasmThreads', 'ort.wasm.min.mjs?threads', simdThreads], ['webgpu', 'ort.webgpu.min.mjs', 1]]) {
    if (threads < 2 && k === 'wasmThreads') continue;
    try {
      const m = await import(`/ort/${file}`);
      m.env.wasm.wasmPaths = '/ort/';
      m.env.wasm.numThreads = threads;
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
  const r = await fetch(`/${url}`);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

const simd = await startGo();
const simdThreads = simd.threads || 1;
const gpu = await gpuInfo();
const ort = await loadOrt();
globalThis.benchEnv = { simd, gpu, ortErrors: ort.errors, crossOriginIsolated: globalThis.crossOriginIsolated, userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency };
globalThis.benchDefaults = () => core.defaults(gpu);
// memory(op): the browser's peak memory, from run.mjs (exposed as benchMemory) when it can read it.
const memory = globalThis.benchMemory ? (op) => globalThis.benchMemory(op) : null;
globalThis.runBench = (cfg) => core.run({ bench: globalThis.diffuseBench, bytes, ort, gpu, log, simd, memory }, { ...core.defaults(gpu), ...cfg });
globalThis.benchReady = true;
log(`ready: simd ${JSON.stringify(simd)}, gpu ${JSON.stringify(gpu.info || gpu.why)}`);
