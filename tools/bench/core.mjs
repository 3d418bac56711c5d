// The benchmark itself, shared by the browser page (page/page.mjs, driven by
// run.mjs) and the Node GPU runner (node.mjs): for each model it times
// one denoiser call at batch 1 and 16 and a full 25-step DDIM sample of 16
// images on every backend (ours through the Go wasm in ../wasm, and
// onnxruntime-web's wasm and webgpu execution providers on the ONNX export of
// the same weights), checks that every backend computes the same outputs as
// ORT wasm, and returns plain JSON.
//
// env: {
//   bench:      the Go side (globalThis.diffuseBench)
//   bytes(url): Promise<Uint8Array> (weights/<name>.safetensors, onnx/<name>.onnx)
//   ort:        {wasm, webgpu}: onnxruntime-web modules (either may be null)
//   gpu:        {available, swiftshader, info}: what navigator.gpu offered
//   log(line)
//   memory(op): optional; 'reset' starts a peak-memory measurement, 'read'
//               resolves to {renderer, gpu, rendererStart, gpuStart} bytes
//               (run.mjs: the peak resident memory of Chromium's processes)
// }
// cfg: see defaults() below; run.mjs and node.mjs fill it from BENCH_* variables.

import { weightsFile } from './onnxweights.mjs';

export function defaults(gpu) {
  const soft = !!gpu?.swiftshader;
  return {
    models: ['mnist', 'emoji', 'scoresde-mnist', 'toy2d'],
    // simd and ort-wasm run on one thread; simd-threads and ort-wasm-threads
    // on as many as the page gives our SIMD backend (skipped when that is 1).
    backends: ['simd', 'simd-threads', 'webgpu', 'ort-wasm', 'ort-wasm-threads', 'ort-webgpu'],
    batches: [1, 16],
    warmup: 2, // untimed calls per batch size (the first compiles pipelines)
    iters: 10, // timed calls per batch size (CPU backends)
    gpuWarmup: soft ? 1 : 3,
    gpuIters: soft ? 2 : 20, // timed calls per batch size (WebGPU backends)
    slimOnnx: false, // true: always the slim ONNX with weights from our safetensors
    sampleBatch: 16,
    sampleSteps: 25,
    sampleWarmupSteps: 2, // an untimed sample of this many steps before the timed one
    samples: soft ? ['simd', 'simd-threads', 'ort-wasm', 'ort-wasm-threads'] : null, // backends that run the full sample (null: all)
    gpuMaxBatchSoft: soft ? 1 : 1 << 30, // largest batch WebGPU backends run on SwiftShader
    // models cheap enough for the WebGPU backends to run every batch and
    // (unless BENCH_SAMPLES says otherwise: samplesSet) the full sample on
    // SwiftShader too (null: the limits above hold for all)
    gpuFullModelsSoft: soft ? ['toy2d'] : null,
    gpuModels: null, // models the WebGPU backends run on (null: all)
    // Full-size public networks (random weights made by run.mjs from their
    // public configs, core/unet/testdata): run at batch 1 only, a few calls,
    // no full sample; per-call time and peak memory are what they measure.
    bigModels: ['ddpm-cifar10-32', 'ddpm-church-256'],
    // (On SwiftShader one 256² call takes minutes: the WebGPU rows time one call, pipelines compiled in it.)
    // ORT webgpu, 10–15× slower than ours on SwiftShader at 32×32, would take most of an
    // hour per 256² call there: left out on software adapters (softSkip).
    big: { batches: [1], warmup: 1, iters: 2, gpuWarmup: 0, gpuIters: 1, samples: [], sampleBatch: 1, gpuFullModelsSoft: [], softSkip: ['ort-webgpu'] },
    seed: 1,
  };
}

const GPU = new Set(['webgpu', 'ort-webgpu']);
const ORT_MODULE = { 'ort-wasm': 'wasm', 'ort-wasm-threads': 'wasmThreads', 'ort-webgpu': 'webgpu' };

// readbackFloor times the least a WebGPU call with a result can cost in
// this runtime: a 16-byte upload, one dispatch of one workgroup, a copy
// and mapAsync of the result, on a device of its own (median of 30 after
// 3 untimed). Any backend's per-call time on this adapter includes it; in
// headless Chromium on SwiftShader it is most of a toy2d call.
async function readbackFloor(n = 30) {
  const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  const dev = await a.requestDevice();
  try {
    const buf = dev.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const st = dev.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const module = dev.createShaderModule({ code: '@group(0) @binding(0) var<storage, read_write> B: array<f32>;\n@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { B[g.x] = B[g.x] + 1.0; }' });
    const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const bg = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
    const times = [];
    for (let i = 0; i < n + 3; i++) {
      const t0 = performance.now();
      dev.queue.writeBuffer(buf, 0, new Float32Array(4));
      const e = dev.createCommandEncoder();
      const p = e.beginComputePass();
      p.setPipeline(pipe);
      p.setBindGroup(0, bg);
      p.dispatchWorkgroups(1);
      p.end();
      e.copyBufferToBuffer(buf, 0, st, 0, 256);
      dev.queue.submit([e.finish()]);
      await st.mapAsync(GPUMapMode.READ);
      st.unmap();
      if (i >= 3) times.push(performance.now() - t0);
    }
    return stats(times);
  } finally {
    dev.destroy();
  }
}

// goBackend is the Go bench's name for one of ours: both SIMD rows are its
// "simd", with the glue's helper threads capped (env.simd.setThreads) to
// one or all.
const goBackend = (backend) => (backend === 'simd-threads' ? 'simd' : backend);

export async function run(env, cfg) {
  const { bench, log } = env;
  const out = { models: [], config: cfg, started: new Date().toISOString() };
  // The readback floor, at the start and (below) the end of the run: on
  // SwiftShader in Chromium it switches between about 0.5 and 2.5 ms.
  const floor = async (when) => {
    if (!env.gpu?.available || !cfg.backends.some((b) => GPU.has(b))) return;
    const f = await readbackFloor().catch((e) => ({ error: String(e?.message || e) }));
    (out.readbackFloor ||= {})[when] = f;
    if (f.median != null) log(`WebGPU readback floor (${when}): median ${f.median.toFixed(2)} ms (min ${f.min.toFixed(2)}, max ${f.max.toFixed(2)}, n=${f.n})`);
  };
  await floor('start');
  for (const name of cfg.models) {
    const t0 = performance.now();
    const r = await benchModel(env, cfg, name).catch((e) => ({ name, error: String(e?.stack || e) }));
    r.wallMs = performance.now() - t0;
    out.models.push(r);
    env.onModel?.(out);
    log(`${name}: done in ${(r.wallMs / 1000).toFixed(1)} s${r.error ? ` (error: ${r.error.split('\n')[0]})` : ''}`);
  }
  await floor('end');
  out.finished = new Date().toISOString();
  return out;
}

function stats(times) {
  if (!times.length) return null;
  const s = [...times].sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  return { n: s.length, median, min: s[0], max: s[s.length - 1], times };
}

// Deterministic standard normal values (mulberry32 + Box-Muller).
function normals(n, seed) {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u() + 1e-12));
    const th = 2 * Math.PI * u();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

function diff(a, b) {
  if (!a || !b || a.length !== b.length) return null;
  let m = 0;
  let ss = 0;
  let rs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates
    ss += d * d;
    rs += b[i] * b[i];
  }
  return { maxAbs: m, relRms: Math.sqrt(ss / Math.max(rs, 1e-30)) };
}

// The ONNX graph: <name>.onnx, or (cfg.slimOnnx, or when that is absent)
// <name>.slim.onnx with its weights rebuilt from our safetensors
// (onnxweights.mjs).
async function loadOnnx(env, cfg, name, st) {
  if (!cfg.slimOnnx) {
    try {
      const model = await env.bytes(`onnx/${name}.onnx`);
      return { model, about: { file: `${name}.onnx`, bytes: model.length } };
    } catch (e) {
      // fall through to the slim file
    }
  }
  const model = await env.bytes(`onnx/${name}.slim.onnx`);
  const recipe = JSON.parse(new TextDecoder().decode(await env.bytes(`onnx/${name}.slim.json`)));
  const data = weightsFile(recipe, st);
  return { model, externalData: [{ path: recipe.data, data }],
    about: { file: `${name}.slim.onnx`, bytes: model.length, externalBytes: data.length, fromSafetensors: recipe.tensors.length } };
}

// ORT session wrapper: run(x, shape, t, class) -> Float32Array.
async function ortSession(env, cfg, kind, name, info, onnx) {
  const ort = env.ort[ORT_MODULE[kind]];
  if (!ort) throw new Error(`onnxruntime-web ${kind} module not loaded`);
  const t0 = performance.now();
  const wasm = kind !== 'ort-webgpu';
  const opts = { executionProviders: [wasm ? 'wasm' : 'webgpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  if (onnx.externalData) opts.externalData = onnx.externalData;
  const session = await ort.InferenceSession.create(onnx.model, opts);
  const ms = performance.now() - t0;
  const [c, h, w] = info.shape;
  const points = h === 1 && w === 1; // toy2d: [B, C] in ONNX
  const names = session.inputNames;
  const run = async (x, B, t, cls) => {
    const feeds = {};
    feeds[names[0]] = new ort.Tensor('float32', x, points ? [B, c] : [B, c, h, w]);
    feeds[names[1]] = new ort.Tensor('float32', t, [B]);
    if (names.length > 2) {
      const l = new BigInt64Array(B);
      for (let i = 0; i < B; i++) l[i] = BigInt(cls ? cls[i] : info.nullClass);
      feeds[names[2]] = new ort.Tensor('int64', l, [B]);
    }
    const res = await session.run(feeds);
    const o = res[session.outputNames[0]];
    const data = o.location && o.location !== 'cpu' ? await o.getData() : o.data;
    return data;
  };
  return { session, run, ms, detail: `onnxruntime-web ${ort.env.versions?.web || ''} ${wasm ? `wasm, ${ort.env.wasm.numThreads} thread(s)` : 'webgpu'}`.trim() };
}

async function benchModel(env, outer, name) {
  const { bench, log } = env;
  const cfg = outer.bigModels?.includes(name) ? { ...outer, ...outer.big, samplesSet: true } : outer;
  const st = await env.bytes(`weights/${name}.safetensors`);
  const info = JSON.parse(await bench.load(name, st, [...new Set([...cfg.batches, cfg.sampleBatch])]));
  const r = { name, shape: info.shape, params: info.params, flops: info.flops, weightsBytes: st.length, backends: {} };
  if (cfg !== outer) r.config = { batches: cfg.batches, warmup: cfg.warmup, iters: cfg.iters, gpuWarmup: cfg.gpuWarmup, gpuIters: cfg.gpuIters };
  let onnx = null;
  try {
    onnx = await loadOnnx(env, cfg, name, st);
    r.onnx = onnx.about;
  } catch (e) {
    r.onnxMissing = `neither onnx/${name}.onnx nor onnx/${name}.slim.onnx could be read (${e.message}): run tools/bench/make-onnx.sh (needs PyTorch) to make them`;
    log(`${name}: ${r.onnxMissing}; ORT backends skipped`);
  }
  const per = info.shape[0] * info.shape[1] * info.shape[2];
  const inputs = {};
  for (const B of cfg.batches) {
    const t = new Float32Array(B).fill(info.tMid);
    const cls = info.conditional ? Int32Array.from({ length: B }, (_, i) => i % info.classes) : null;
    inputs[B] = { x: normals(B * per, 1234 + B), t, cls };
  }
  const ref = {}; // ORT wasm outputs, the reference every backend is compared with
  const outs = {};
  for (const backend of cfg.backends) {
    if (backend.startsWith('ort') && !onnx) continue;
    if (GPU.has(backend) && !env.gpu.available) {
      r.backends[backend] = { skipped: 'no WebGPU adapter' };
      continue;
    }
    if (backend.endsWith('-threads') && !(env.simd?.threads > 1)) {
      r.backends[backend] = { skipped: 'our SIMD backend has one thread here (no cross-origin isolation, or one core)' };
      continue;
    }
    if (env.gpu?.swiftshader && cfg.softSkip?.includes(backend)) {
      r.backends[backend] = { skipped: 'not run on this network on SwiftShader (too slow: see core.mjs, big)' };
      continue;
    }
    if (GPU.has(backend) && cfg.gpuModels && !cfg.gpuModels.includes(name)) {
      r.backends[backend] = { skipped: 'not run on this model (BENCH_GPU_MODELS)' };
      continue;
    }
    const b = { batches: {} };
    r.backends[backend] = b;
    const gpu = GPU.has(backend);
    // A model SwiftShader runs in full is timed as on a GPU, with at least 3 + 20 calls.
    const full = gpu && env.gpu.swiftshader && cfg.gpuFullModelsSoft?.includes(name);
    const warm = gpu ? (full ? Math.max(cfg.gpuWarmup, 3) : cfg.gpuWarmup) : cfg.warmup;
    const iters = gpu ? (full ? Math.max(cfg.gpuIters, 20) : cfg.gpuIters) : cfg.iters;
    let ortS = null;
    if (env.memory) await env.memory('reset');
    try {
      if (backend.startsWith('ort')) {
        ortS = await ortSession(env, cfg, backend, name, info, onnx);
        b.initMs = ortS.ms;
        b.detail = ortS.detail;
      } else {
        if (goBackend(backend) === 'simd') env.simd?.setThreads?.(backend === 'simd' ? 1 : env.simd.threads);
        const o = JSON.parse(await bench.open(name, goBackend(backend)));
        b.initMs = o.ms;
        b.detail = o.detail;
      }
      for (const B of cfg.batches) {
        if (gpu && env.gpu.swiftshader && B > cfg.gpuMaxBatchSoft && !full) {
          b.batches[B] = { skipped: `batch ${B} not run on SwiftShader (BENCH_GPU_MAX_BATCH_SOFT=${cfg.gpuMaxBatchSoft})` };
          continue;
        }
        const { x, t, cls } = inputs[B];
        let times;
        let y;
        if (ortS) {
          times = [];
          for (let i = 0; i < warm + iters; i++) {
            const t0 = performance.now();
            y = await ortS.run(x, B, t, cls);
            if (i >= warm) times.push(performance.now() - t0);
          }
        } else {
          const o = await bench.run(name, goBackend(backend), x, t, cls, warm, iters);
          times = Array.from(o.times);
          y = o.out;
        }
        const s = stats(times);
        s.gflops = info.flops[B] ? info.flops[B].gemm / (s.median * 1e6) : null;
        s.warmup = warm;
        b.batches[B] = s;
        if (backend === 'ort-wasm') ref[B] = y;
        (outs[backend] ||= {})[B] = y;
        log(`${name} ${backend} b${B}: median ${s.median.toFixed(2)} ms (min ${s.min.toFixed(2)}, max ${s.max.toFixed(2)}, n=${s.n}), ${s.gflops ? s.gflops.toFixed(2) : '?'} GFLOP/s`);
      }
      // A full sample: DDIM, 25 steps, 16 images, driven by our sampler.
      if (!cfg.samples || cfg.samples.includes(backend) || (full && !cfg.samplesSet)) {
        let key = goBackend(backend);
        if (ortS) {
          key = `js:${backend}`;
          bench.setJS(backend, (x, shape, t, cls) => ortS.run(x, shape[0], t, cls));
        }
        // An untimed short sample first, as per-call timings have warm-up
        // calls: the first sample compiles our WebGPU sampler's kernels.
        if (cfg.sampleWarmupSteps > 0) await bench.sample(name, key, cfg.sampleBatch, cfg.sampleWarmupSteps, cfg.seed);
        const s = await bench.sample(name, key, cfg.sampleBatch, cfg.sampleSteps, cfg.seed);
        b.sample = { batch: cfg.sampleBatch, steps: cfg.sampleSteps, ms: s.ms, nfe: s.nfe, driver: ortS ? 'our Go DDIM over ORT session.run' : backend === 'webgpu' ? 'GPU-resident SampleDDIM' : 'core/sampler.DDIM' };
        (outs[backend] ||= {}).sample = s.x;
        if (backend === 'ort-wasm') ref.sample = s.x;
        log(`${name} ${backend}: DDIM ${cfg.sampleSteps} steps x${cfg.sampleBatch}: ${(s.ms / 1000).toFixed(2)} s`);
      } else {
        b.sample = { skipped: 'full sample not run for this backend here (BENCH_SAMPLES)' };
      }
    } catch (e) {
      b.error = String(e?.message || e);
      log(`${name} ${backend}: ERROR ${b.error}`);
    } finally {
      if (env.memory) {
        b.memory = await env.memory('read').catch((e) => ({ error: String(e?.message || e) }));
        const mb = (v) => (v / 2 ** 20).toFixed(0);
        if (b.memory?.renderer) log(`${name} ${backend}: peak memory: page ${mb(b.memory.renderer)} MiB (${mb(b.memory.rendererStart)} at start), GPU process ${mb(b.memory.gpu)} MiB (${mb(b.memory.gpuStart)} at start)`);
      }
      if (ortS) await ortS.session.release?.();
      else bench.close(name, goBackend(backend));
    }
  }
  // Agreement with ORT wasm (the reference): per batch and for the sample.
  for (const [backend, o] of Object.entries(outs)) {
    const b = r.backends[backend];
    b.vsOrtWasm = {};
    for (const k of Object.keys(o)) {
      const d = diff(o[k], ref[k]);
      if (d) b.vsOrtWasm[k] = d;
    }
  }
  return r;
}
