// The benchmark page: starts the bench wasm (tools/bench/wasm) with the SIMD
// kernels attached, loads onnxruntime-web from this origin (/ort/, out of
// web/node_modules; no CDN) with one wasm thread, and exposes
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
  const simd = await attachSimd(go, ['/simd/kernels_relaxed.wasm', '/simd/kernels.wasm']);
  const ready = new Promise((r) => { globalThis.diffuseBenchReady = r; });
  const { instance } = await WebAssembly.instantiateStreaming(fetch('/bench.wasm'), go.importObject);
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
  const o = { wasm: null, webgpu: null, errors: [] };
  for (const [k, file] of [['wasm', 'ort.wasm.min.mjs'], ['webgpu', 'ort.webgpu.min.mjs']]) {
    try {
      const m = await import(`/ort/${file}`);
      m.env.wasm.wasmPaths = '/ort/';
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
  const r = await fetch(`/${url}`);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

const simd = await startGo();
const gpu = await gpuInfo();
const ort = await loadOrt();
globalThis.benchEnv = { simd, gpu, ortErrors: ort.errors, crossOriginIsolated: globalThis.crossOriginIsolated, userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency };
globalThis.benchDefaults = () => core.defaults(gpu);
globalThis.runBench = (cfg) => core.run({ bench: globalThis.diffuseBench, bytes, ort, gpu, log }, { ...core.defaults(gpu), ...cfg });
globalThis.benchReady = true;
log(`ready: simd ${JSON.stringify(simd)}, gpu ${JSON.stringify(gpu.info || gpu.why)}`);
