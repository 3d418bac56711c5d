// Shared Node-side helpers of run.mjs (Chromium) and node.mjs (Dawn in
// Node): configuration from BENCH_* variables, building the bench wasm,
// machine facts, and the markdown report.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarise, phaseTable } from './pageload.mjs';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const WEB = path.join(ROOT, 'web');

export function goroot() {
  return process.env.GOROOT || execFileSync('go', ['env', 'GOROOT']).toString().trim();
}

/** BENCH_* overrides of core.mjs's defaults (documented in BENCHMARKS.md). */
export function envConfig() {
  const e = process.env;
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  const int = (v) => { const n = Number(v); if (!Number.isInteger(n) || n < 0) throw new Error(`not a count: ${v}`); return n; };
  const c = {};
  if (e.BENCH_MODELS) c.models = list(e.BENCH_MODELS);
  if (e.BENCH_BACKENDS) c.backends = list(e.BENCH_BACKENDS);
  if (e.BENCH_BATCHES) c.batches = list(e.BENCH_BATCHES).map(int);
  if (e.BENCH_WARMUP) c.warmup = int(e.BENCH_WARMUP);
  if (e.BENCH_ITERS) c.iters = int(e.BENCH_ITERS);
  if (e.BENCH_GPU_WARMUP) c.gpuWarmup = int(e.BENCH_GPU_WARMUP);
  if (e.BENCH_GPU_ITERS) c.gpuIters = int(e.BENCH_GPU_ITERS);
  if (e.BENCH_GPU_MAX_BATCH_SOFT) c.gpuMaxBatchSoft = int(e.BENCH_GPU_MAX_BATCH_SOFT);
  if (e.BENCH_GPU_FULL_MODELS_SOFT) c.gpuFullModelsSoft = e.BENCH_GPU_FULL_MODELS_SOFT === 'none' ? [] : list(e.BENCH_GPU_FULL_MODELS_SOFT);
  if (e.BENCH_GPU_MODELS) c.gpuModels = e.BENCH_GPU_MODELS === 'all' ? null : list(e.BENCH_GPU_MODELS);
  if (e.BENCH_SAMPLE_BATCH) c.sampleBatch = int(e.BENCH_SAMPLE_BATCH);
  if (e.BENCH_SAMPLE_STEPS) c.sampleSteps = int(e.BENCH_SAMPLE_STEPS);
  if (e.BENCH_SAMPLE_WARMUP) c.sampleWarmupSteps = int(e.BENCH_SAMPLE_WARMUP);
  if (e.BENCH_ONNX_SLIM) c.slimOnnx = e.BENCH_ONNX_SLIM === '1';
  if (e.BENCH_SAMPLES) { c.samples = e.BENCH_SAMPLES === 'all' ? null : list(e.BENCH_SAMPLES); c.samplesSet = true; }
  return c;
}

/** Builds the bench wasm (tools/bench/wasm) into dir; returns its path. */
export function buildWasm(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, 'bench.wasm');
  execFileSync('go', ['build', '-trimpath', '-ldflags=-s', '-o', out, './tools/bench/wasm'], {
    cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GOOS: 'js', GOARCH: 'wasm' },
  });
  return out;
}

export function machine() {
  const cpus = os.cpus();
  let model = cpus[0]?.model || '?';
  let flags = '';
  try {
    const ci = fs.readFileSync('/proc/cpuinfo', 'utf8');
    flags = (ci.match(/^flags\s*:\s*(.*)$/m) || [])[1] || '';
    flags = ['avx2', 'avx512f', 'fma'].filter((f) => flags.split(' ').includes(f)).join(' ');
  } catch { /* not Linux */ }
  let memGiB = os.totalmem() / 2 ** 30;
  return {
    cpu: model, cores: cpus.length, cpuFlags: flags, memGiB: Math.round(memGiB * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`, node: process.version, loadavg: os.loadavg(),
    host: os.hostname(),
  };
}

export function onnxDir() {
  return path.resolve(process.env.BENCH_ONNX || path.join(HERE, 'onnx'));
}

/** Says which ONNX files are missing and how to make them. */
export function checkOnnx(models) {
  const dir = onnxDir();
  const missing = models.filter((m) => !fs.existsSync(path.join(dir, `${m}.onnx`)) && !fs.existsSync(path.join(dir, `${m}.slim.onnx`)));
  if (missing.length) {
    console.log(`\n!! ONNX files missing in ${path.relative(ROOT, dir) || dir}: ${missing.map((m) => `${m}.slim.onnx`).join(', ')}.\n` +
      `!! onnxruntime-web cannot be measured on those models (no ratios vs ORT). The shipped models'\n` +
      `!! slim graphs are in git (tools/bench/onnx); make them for another model with\n` +
      `!!   tools/bench/make-onnx.sh MODEL     (needs PyTorch: apt-get install python3-torch)\n` +
      `!! Our backends are measured anyway.\n`);
  }
  return missing;
}

// ---------- report ----------

const fmtMs = (v) => (v == null ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${v.toFixed(0)} ms` : v >= 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(2)} ms`);
const NAMES = {
  simd: 'ours, SIMD (CPU), 1 thread', 'simd-threads': 'ours, SIMD (CPU), helper threads', webgpu: 'ours, WebGPU',
  'ort-wasm': 'ORT wasm, 1 thread', 'ort-wasm-threads': 'ORT wasm, as many threads', 'ort-webgpu': 'ORT webgpu',
};
const GPU_ROW = new Set(['webgpu', 'ort-webgpu']);
const PEER = {
  simd: 'ort-wasm', 'simd-threads': 'ort-wasm-threads', webgpu: 'ort-webgpu',
  'ort-wasm': 'ort-wasm', 'ort-wasm-threads': 'ort-wasm-threads', 'ort-webgpu': 'ort-webgpu',
};

function cell(s) {
  if (!s) return '–';
  if (s.skipped) return 'not run';
  return `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)}, n=${s.n})`;
}

function ratio(a, b) {
  if (!a?.median || !b?.median) return '–';
  return `${(b.median / a.median).toFixed(2)}×`;
}

/** The markdown report of one run (results JSON from run.mjs/node.mjs). */
export function markdown(res) {
  const L = [];
  const m = res.machine;
  L.push(`## ${res.title || 'Benchmark'} — ${res.date}`);
  L.push('');
  L.push(`- Machine: ${m.cpu}, ${m.cores} cores${m.cpuFlags ? ` (${m.cpuFlags})` : ''}, ${m.memGiB} GiB, ${m.os}; load average (1, 5, 15 min) at start ${m.loadavg.map((v) => v.toFixed(2)).join(' ')}${m.loadavgEnd ? `, at end ${m.loadavgEnd.map((v) => v.toFixed(2)).join(' ')}` : ''}`);
  if (res.browser) L.push(`- Browser: ${res.browser}${res.env?.crossOriginIsolated ? '' : ' (not cross-origin isolated)'}`);
  L.push(`- Runtime: ${res.runtime}`);
  const g = res.env?.gpu;
  L.push(`- WebGPU adapter: ${g?.available ? `${Object.entries(g.info || {}).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ')}${g.swiftshader ? ' — SwiftShader, a CPU software renderer: WebGPU figures here say nothing about real GPUs' : ''}` : `none (${g?.why || '?'})`}`);
  const fl = (f) => (f?.median != null ? `${f.median.toFixed(2)} ms (${f.min.toFixed(2)}–${f.max.toFixed(2)}, n=${f.n})` : `not measured (${f?.error || '?'})`);
  let f = res.readbackFloor;
  if (f?.median != null) f = { start: f }; // the first runs measured it once, at the start
  if (f) L.push(`- WebGPU readback floor: a 16-byte upload, one one-workgroup dispatch, a copy and a mapAsync, on a device of their own, took ${fl(f.start)} at the start of the run${f.end ? ` and ${fl(f.end)} at its end` : ''}; no WebGPU call with a result is faster.`);
  const c = res.config;
  L.push(`- Per-call timings: median of n timed calls after warm-up (CPU backends ${c.warmup} warm-up + ${c.iters} timed; WebGPU backends ${c.gpuWarmup} + ${c.gpuIters}${g?.swiftshader && c.gpuFullModelsSoft?.length ? `, and at least 3 + 20 with every batch${c.samplesSet ? '' : ' and the full sample'} for ${c.gpuFullModelsSoft.join(', ')}` : ''}); wall-clock, performance.now()`);
  if (res.env?.simd?.threads > 1) L.push(`- Threads: the "helper threads" rows split large GEMMs over ${res.env.simd.threads} threads (wasm/simd/simd_glue.js); their peer is ORT wasm with numThreads ${res.env.simd.threads}.`);
  L.push(`- "vs ORT" is ORT's median time / ours for the same kind of backend (SIMD vs ORT wasm with as many threads, our WebGPU vs ORT webgpu): above 1× we are faster. GFLOP/s counts the convolutions', linears' and attention's multiply-adds ×2 (tools/bench/flops) over the median time.`);
  L.push(`- Full sample: DDIM (η = 0), ${c.sampleSteps} steps, ${c.sampleBatch} images, seed ${c.seed}, no guidance${c.sampleWarmupSteps ? `, after an untimed ${c.sampleWarmupSteps}-step one` : ''}; ORT's is driven by our Go sampler calling session.run.`);
  L.push('');
  for (const r of res.models) {
    const f1 = r.flops?.['1']?.gemm;
    L.push(`### ${r.name}${r.shape ? ` — ${r.shape.join('×')}, ${(r.params / 1e6).toFixed(2)}M params, ${f1 ? (f1 / 1e9).toFixed(3) : '?'} GFLOP per image` : ''}`);
    L.push('');
    if (r.error) { L.push(`error: ${r.error.split('\n')[0]}`, ''); continue; }
    if (r.onnxMissing) L.push(`(${r.onnxMissing})`, '');
    if (r.config) L.push(`(A full-size public network with random weights: batch ${r.config.batches.join(', ')} only, CPU backends ${r.config.warmup} warm-up + ${r.config.iters} timed calls, WebGPU ${r.config.gpuWarmup} + ${r.config.gpuIters}; no full sample.)`, '');
    const bs = r.config?.batches || c.batches;
    L.push(`| backend | init | ${bs.map((b) => `b${b} per call | b${b} GFLOP/s | b${b} vs ORT`).join(' | ')} | DDIM ${c.sampleSteps}×${c.sampleBatch} | vs ORT | max abs diff vs ORT wasm (b1, sample) |`);
    L.push(`|---|---|${bs.map(() => '---|---|---').join('|')}|---|---|---|`);
    for (const [k, b] of Object.entries(r.backends)) {
      if (b.skipped) { L.push(`| ${NAMES[k] || k} | ${b.skipped} |`); continue; }
      if (b.error && !Object.keys(b.batches || {}).length) { L.push(`| ${NAMES[k] || k} | error: ${b.error.slice(0, 120)} |`); continue; }
      const peer = r.backends[PEER[k]];
      const cols = bs.map((B) => {
        const s = b.batches?.[B];
        return `${cell(s)} | ${s?.gflops ? s.gflops.toFixed(2) : '–'} | ${k === PEER[k] ? '1×' : ratio(s, peer?.batches?.[B])}`;
      });
      const smp = b.sample;
      const sv = smp?.ms != null ? fmtMs(smp.ms) : smp?.skipped ? 'not run' : '–';
      const sr = smp?.ms != null && peer?.sample?.ms != null ? (k === PEER[k] ? '1×' : `${(peer.sample.ms / smp.ms).toFixed(2)}×`) : '–';
      const d = b.vsOrtWasm || {};
      const dv = k === 'ort-wasm' ? 'reference' : `${d['1'] ? d['1'].maxAbs.toExponential(1) : '–'}, ${d.sample ? d.sample.maxAbs.toExponential(1) : '–'}`;
      L.push(`| ${NAMES[k] || k} | ${fmtMs(b.initMs)} | ${cols.join(' | ')} | ${sv} | ${sr} | ${dv}${b.error ? ` (error: ${b.error.slice(0, 80)})` : ''} |`);
    }
    L.push('');
    const mem = Object.entries(r.backends).filter(([, b]) => b.memory?.renderer);
    if (mem.length) {
      const mib = (v) => `${(v / 2 ** 20).toFixed(0)} MiB`;
      L.push(`Peak memory (resident; Chromium's page process, and its GPU process where WebGPU's buffers live; from the start of the backend's init to its last call): ${mem.map(([k, b]) => `${NAMES[k] || k} ${mib(b.memory.renderer)} page (${mib(b.memory.rendererStart)} at start)${GPU_ROW.has(k) ? `, ${mib(b.memory.gpu)} GPU process (${mib(b.memory.gpuStart)} at start)` : ''}`).join('; ')}.`, '');
    }
  }
  if (res.pageLoad?.length) {
    L.push('### Page load to first image (the app, dist/)');
    L.push('');
    L.push('Navigation start to the first finished image of `index.html?model=M&backend=B` (the first view as a visitor gets it: the default settings, which the app samples on load) in headless Chromium, "cold": a new browser profile (empty HTTP cache, no service worker, no compiled code), then "warm": a new browser on that profile (service worker, Cache Storage and code cache in place, nothing in memory). Bytes: everything the server sent (HTTP headers and bodies, counted at a proxy in front of tools/serve) until the image was done; "+SW" is what the service worker went on to precache until it controlled the page (the first visit in all is the sum). Files downloaded more than once on a load are listed below the table; the phases (the app\'s Performance marks, `tools/bench/pageload.mjs`) after it.');
    L.push('');
    L.push('| model | backend asked → used | cache | to first image | bytes until then | +SW after |');
    L.push('|---|---|---|---|---|---|');
    for (const p of res.pageLoad) {
      if (p.error) { L.push(`| ${p.model} | ${p.backend} | ${p.cache} | error: ${p.error.slice(0, 100)} | | |`); continue; }
      L.push(`| ${p.model} | ${p.backend} → ${p.used || '?'} | ${p.cache} | ${fmtMs(p.ms)} | ${(p.bytes / 1e6).toFixed(2)} MB | ${(p.bytesAfter / 1e6).toFixed(2)} MB |`);
    }
    L.push('');
    for (const p of res.pageLoad) {
      if (p.repeated?.length) L.push(`- ${p.model} ${p.backend} ${p.cache}: downloaded more than once: ${p.repeated.join(', ')}`);
    }
    if (res.pageLoad.some((p) => p.repeated?.length)) L.push('');
    const cols = {};
    for (const p of res.pageLoad) if (!p.error) cols[`${p.model} ${p.backend} ${p.cache}`] = summarise([{ ms: p.ms, marks: p.phases }]);
    if (Object.keys(cols).length) {
      L.push('Phases (time since navigation start when each was done; one load each):');
      L.push('');
      L.push(phaseTable(cols).replace(/ \(([^()–]+)–\1\)/g, ''));
      L.push('');
    }
  }
  if (res.notes?.length) {
    for (const n of res.notes) L.push(`- ${n}`);
    L.push('');
  }
  return L.join('\n');
}
