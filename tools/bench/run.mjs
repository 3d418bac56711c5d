// make bench: the benchmark in headless Chromium.
//
//   node tools/bench/run.mjs            (from the repository root; `make bench`)
//
// 1. Builds the bench wasm (tools/bench/wasm: our WebGPU and SIMD backends
//    linked directly) and serves it with the benchmark page (tools/bench/page),
//    core.mjs, the SIMD kernels, onnxruntime-web's files out of
//    web/node_modules/onnxruntime-web/dist (same origin, no CDN), the shipped
//    weights and the ONNX graphs (tools/bench/onnx: the shipped slim ones,
//    made by make-onnx.sh, or full exports of export_onnx.py)
//    from a local static server.
// 2. In headless Chromium with WebGPU (Debian's chromium; on a machine without
//    a GPU that is SwiftShader), runs core.mjs: per model and backend, one
//    denoiser call at batch 1 and 16 (median, min, max of n after warm-up),
//    a 25-step DDIM sample of 16 images, and the agreement with ORT wasm.
// 3. Builds the app (make dist into $BENCH_OUT/site), serves it with
//    tools/serve behind a byte-counting proxy, and times page load to first
//    image with its phases (pageload.mjs), cold (a browser on a new profile)
//    and warm (a new browser on that profile).
// 4. Writes $BENCH_OUT/bench-<date>.json and .md (BENCH_OUT defaults to
//    dist/bench) and prints the markdown.
// 5. The native section (native.mjs; BENCH_NATIVE=0 leaves it out): our Go
//    backends natively and PyTorch on the CPU, against this run's browser
//    SIMD figures; $BENCH_OUT/bench-native.json and .md.
//
// Settings (environment): BENCH_MODELS, BENCH_BACKENDS, BENCH_BATCHES,
// BENCH_WARMUP, BENCH_ITERS, BENCH_GPU_WARMUP, BENCH_GPU_ITERS,
// BENCH_GPU_MAX_BATCH_SOFT, BENCH_SAMPLES, BENCH_SAMPLE_BATCH,
// BENCH_SAMPLE_STEPS (see lib.mjs and BENCHMARKS.md); BENCH_PAGELOAD_MODELS
// (default "mnist,emoji", smoke "toy2d"; "none" skips step 3),
// BENCH_PAGELOAD_BACKENDS (default "auto"), BENCH_PAGELOAD_QUERY (settings
// added to the URL; smoke "steps=2"); BENCH_SMOKE=1 is the one-iteration smoke run
// (make test-bench-smoke) that checks the harness works, not the numbers;
// CHROMIUM (default /usr/bin/chromium); BENCH_OUT.
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, HERE, WEB, goroot, envConfig, buildWasm, machine, onnxDir, checkOnnx, markdown } from './lib.mjs';
import { runNative, smokeProblems, nativeMismatch } from './native.mjs';
import { coldWarm, missingPhases, FLAGS } from './pageload.mjs';

const require = createRequire(path.join(WEB, 'package.json'));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch {
  console.error('bench: playwright-core is missing: run `cd web && npm ci` first.');
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) {
  console.error(`bench: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM).`);
  process.exit(2);
}
const SMOKE = process.env.BENCH_SMOKE === '1';
const OUT = path.resolve(process.env.BENCH_OUT || path.join(ROOT, 'dist', SMOKE ? 'bench-smoke' : 'bench'));
const ORT_DIST = path.join(WEB, 'node_modules', 'onnxruntime-web', 'dist');
// (FLAGS: pageload.mjs's, the same for the benchmark page and the app.)

const t0 = Date.now();
// The smoke run (make test) prints only problems and its verdict.
const log = (s) => { if (!SMOKE || /error|ERROR|!!/.test(s)) console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`); };

// ---------- static server for the benchmark page ----------

const TYPES = { '.html': 'text/html; charset=utf-8', '.mjs': 'text/javascript', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

function benchServer(wasmPath, bigDir) {
  const routes = [
    ['/weights/', bigDir], // the full-size public networks' random-weight files (bigWeights), else the shipped ones
    ['/bench.wasm', wasmPath],
    ['/core.mjs', path.join(HERE, 'core.mjs')],
    ['/onnxweights.mjs', path.join(HERE, 'onnxweights.mjs')],
    ['/go/wasm_exec.js', path.join(goroot(), 'lib', 'wasm', 'wasm_exec.js')],
    ['/simd/', path.join(ROOT, 'wasm', 'simd')],
    ['/ort/', ORT_DIST],
    ['/weights/', path.join(ROOT, 'weights')],
    ['/onnx/', onnxDir()],
    ['/', path.join(HERE, 'page')],
  ];
  const srv = http.createServer((req, res) => {
    let u = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (u === '/') u = '/index.html';
    for (const [pre, dst] of routes) {
      if (pre.endsWith('/') ? !u.startsWith(pre) : u !== pre) continue;
      const file = pre.endsWith('/') ? path.join(dst, u.slice(pre.length)) : dst;
      if (pre.endsWith('/') && !path.resolve(file).startsWith(path.resolve(dst))) break;
      if (!fs.existsSync(file) && pre === '/weights/' && dst === bigDir) continue;
      fs.readFile(file, (err, data) => {
        if (err) { res.writeHead(404); res.end('not found'); return; }
        // Cross-origin isolation: SharedArrayBuffer for our SIMD helper
        // threads and ORT's threaded wasm (the *-threads rows), and
        // performance.now() in 5 µs steps instead of 100 µs.
        res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store',
          'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
        res.end(data);
      });
      return;
    }
    res.writeHead(404);
    res.end('not found');
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${srv.address().port}`, close: () => srv.close() })));
}

// ---------- full-size public networks ----------

/** Writes the random-weight files of the full-size public networks among
 * models (core.mjs's bigModels: their public config.json and
 * scheduler_config.json in core/unet/testdata, as NAME with - for _) into
 * dir: core/unet/unettest/cmd/randunet writes the diffusers folder, `diffuse
 * convert` our fp16 file, as a visitor's import would. Made once per output
 * folder (the seed is fixed, so the files are the same every time). */
function bigWeights(models, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const bin = path.join(OUT, 'bin');
  let built = false;
  for (const m of models) {
    const out = path.join(dir, `${m}.safetensors`);
    if (fs.existsSync(out)) continue;
    if (!built) {
      for (const [n, pkg] of [['randunet', './core/unet/unettest/cmd/randunet'], ['diffuse', './tools/diffuse']]) {
        execFileSync('go', ['build', '-o', path.join(bin, n), pkg], { cwd: ROOT, stdio: 'inherit' });
      }
      built = true;
    }
    const stem = path.join(ROOT, 'core', 'unet', 'testdata', m.replace(/-/g, '_'));
    const tmp = path.join(dir, `${m}.diffusers`);
    log(`${m}: writing random weights from ${path.relative(ROOT, stem)}_config.json`);
    execFileSync(path.join(bin, 'randunet'), ['-config', `${stem}_config.json`, '-scheduler', `${stem}_scheduler_config.json`, '-o', tmp], { stdio: 'ignore' });
    execFileSync(path.join(bin, 'diffuse'), ['convert', '--from', 'diffusers', path.join(tmp, 'unet'), '-o', out], { stdio: 'ignore' });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------- peak memory of Chromium's processes ----------

/** The renderer and GPU processes of the Chromium this Node process
 * launched (descendants of it, so another test's Chromium is not counted). */
function chromiumProcs() {
  const parent = new Map();
  const cmd = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
      cmd.set(Number(d), fs.readFileSync(`/proc/${d}/cmdline`, 'utf8'));
    } catch { /* gone */ }
  }
  const mine = (pid) => { for (let p = pid, i = 0; p > 1 && i < 64; p = parent.get(p), i++) if (p === process.pid) return true; return false; };
  const out = [];
  for (const [pid, c] of cmd) {
    const type = /--type=renderer/.test(c) ? 'renderer' : /--type=gpu-process/.test(c) ? 'gpu' : null;
    if (type && mine(pid)) out.push({ pid, type });
  }
  return out;
}

const kB = (pid, key) => {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : 0;
};

/** benchMemory(op) for the page: 'reset' clears the peak resident set
 * (VmHWM) of Chromium's renderer and GPU processes (Linux: clear_refs 5);
 * 'read' returns the largest renderer peak and the GPU process's, in bytes,
 * with their resident sizes at the reset. null where /proc cannot do it. */
function memoryProbe() {
  let start = { renderer: 0, gpu: 0 };
  try {
    fs.accessSync(`/proc/${process.pid}/clear_refs`, fs.constants.W_OK);
  } catch {
    return null;
  }
  return async (op) => {
    const procs = chromiumProcs();
    const peak = { renderer: 0, gpu: 0 };
    for (const p of procs) {
      try {
        if (op === 'reset') {
          fs.writeFileSync(`/proc/${p.pid}/clear_refs`, '5');
          peak[p.type] = Math.max(peak[p.type], kB(p.pid, 'VmRSS'));
        } else {
          peak[p.type] = Math.max(peak[p.type], kB(p.pid, 'VmHWM'));
        }
      } catch { /* gone */ }
    }
    if (op === 'reset') { start = peak; return null; }
    return { renderer: peak.renderer, gpu: peak.gpu, rendererStart: start.renderer, gpuStart: start.gpu };
  };
}

// ---------- the app behind a byte-counting proxy ----------

async function startAppServer(site) {
  const bin = path.join(OUT, 'serve');
  execFileSync('go', ['build', '-o', bin, './tools/serve'], { cwd: ROOT, stdio: 'inherit' });
  const p = spawn(bin, ['-dir', site, '-addr', '127.0.0.1:0', '-quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const upstream = await new Promise((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d) => { buf += d; const nl = buf.indexOf('\n'); if (nl >= 0) resolve(new URL(buf.slice(0, nl).trim())); });
    p.on('exit', (c) => reject(new Error(`tools/serve exited with ${c}`)));
  });
  const counter = { bytes: 0 };
  const proxy = net.createServer((c) => {
    const u = net.connect(Number(upstream.port), upstream.hostname);
    c.pipe(u);
    u.on('data', (d) => { counter.bytes += d.length; });
    u.pipe(c);
    const end = () => { c.destroy(); u.destroy(); };
    c.on('error', end);
    u.on('error', end);
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${proxy.address().port}`, counter, close: () => { proxy.close(); p.kill(); } };
}

/** Page load to first image, cold and warm (pageload.mjs coldWarm: a new
 * browser profile, then a new browser on it), per model and backend: the
 * time, the phases (the app's Performance marks), the bytes the server sent
 * (at the proxy) until the image and after (the service worker's precache),
 * and files downloaded more than once. query: the URL's settings. */
async function pageLoads(models, backends, query) {
  const out = [];
  log('building the app (make dist) for the page-load test');
  const site = path.join(OUT, 'site');
  execFileSync('make', ['--no-print-directory', 'dist', `DIST=${site}`], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const app = await startAppServer(site);
  try {
    for (const model of models) {
      for (const backend of backends) {
        let files = [];
        const rs = {};
        const setup = (ctx, cache) => {
          app.counter.bytes = 0;
          files = [];
          rs[cache] = { model, backend, cache };
          ctx.on('requestfinished', async (rq) => {
            try {
              const s = await rq.sizes();
              const resp = await rq.response();
              const enc = resp?.headers()['content-encoding'];
              // (An answer the service worker gave from its cache crossed no network.)
              const body = resp?.fromServiceWorker() ? 0 : s.responseBodySize;
              files.push({ url: new URL(rq.url()).pathname, bytes: s.responseBodySize + s.responseHeadersSize, body, sw: !!rq.serviceWorker(), ...(enc ? { encoding: enc } : {}) });
            } catch { /* gone */ }
          });
        };
        const after = async (page, cache, l) => {
          const r = rs[cache];
          Object.assign(r, { ms: l.ms, used: l.used, swControlled: l.sw, phases: l.marks, missingPhases: missingPhases(l.marks) });
          r.bytes = app.counter.bytes;
          // The service worker's install (its precache) is part of a first
          // visit: until it controls the page (the page registers it after
          // the first image), then a moment for stragglers.
          await page.waitForFunction(() => !!navigator.serviceWorker?.controller, null, { timeout: 60000, polling: 100 }).catch(() => {});
          await page.waitForTimeout(1000);
          r.bytesAfter = app.counter.bytes - r.bytes;
          // Files whose body came over the network more than once (the
          // page's and the service worker's requests together).
          const got = new Map();
          for (const f of files) if (f.body > 0) got.set(f.url, (got.get(f.url) || 0) + 1);
          r.repeated = [...got].filter(([, n]) => n > 1).map(([url, n]) => `${url} (${n}×)`);
          r.files = files.filter((f) => f.bytes > 0).sort((a, b) => b.bytes - a.bytes).slice(0, 12);
        };
        const url = `${app.url}/index.html?model=${model}&backend=${backend}${query ? `&${query}` : ''}`;
        const res = await coldWarm(chromium, url, { executablePath: CHROMIUM, args: FLAGS, setup, after });
        for (const cache of ['cold', 'warm']) {
          const r = rs[cache] || { model, backend, cache };
          if (res[cache].error) {
            r.error = res[cache].error;
            log(`page load ${model} ${backend} ${cache}: ERROR ${r.error}`);
          } else {
            log(`page load ${model} ${backend} ${cache}: ${(r.ms / 1000).toFixed(2)} s to first image (${r.used}), ${(r.bytes / 1e6).toFixed(2)} MB, ` +
              `${((r.bytes + r.bytesAfter) / 1e6).toFixed(2)} MB with the service worker's precache${r.repeated.length ? `; downloaded more than once: ${r.repeated.join(', ')}` : ''}` +
              `${r.missingPhases.length ? `; no mark for ${r.missingPhases.join(', ')}` : ''}`);
          }
          out.push(r);
        }
      }
    }
  } finally {
    app.close();
  }
  return out;
}

// ---------- main ----------

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const cfg = envConfig();
  if (SMOKE) Object.assign(cfg, { models: cfg.models || ['toy2d', 'mnist'], gpuModels: ['toy2d'], warmup: 0, iters: 1, gpuWarmup: 0, gpuIters: 1, batches: [1, 2], gpuMaxBatchSoft: 2, sampleBatch: 2, sampleSteps: 2, sampleWarmupSteps: 0, samples: null });
  const mach = machine();
  const core = await import('./core.mjs');
  const big = core.defaults(null).bigModels;
  if (!cfg.models && !SMOKE && process.env.BENCH_BIG !== '0') cfg.models = [...core.defaults(null).models, ...big];
  const bigDir = path.join(OUT, 'weights-big');
  bigWeights((cfg.models || []).filter((m) => big.includes(m)), bigDir);
  log(`machine: ${mach.cpu}, ${mach.cores} cores; building the bench wasm`);
  const wasm = buildWasm(OUT);
  if (!fs.existsSync(ORT_DIST)) console.log('!! web/node_modules/onnxruntime-web is missing (cd web && npm ci): ORT backends will fail.');
  const missing = checkOnnx(cfg.models || ['mnist', 'emoji', 'scoresde-mnist', 'toy2d']);
  const srv = await benchServer(wasm, bigDir);
  // Playwright gives the browser a fresh temporary profile (user data dir).
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const res = { title: SMOKE ? 'Smoke run (not a measurement)' : 'make bench (headless Chromium)', date: new Date().toISOString().slice(0, 10), machine: mach, browser: `Chromium ${browser.version()}`, runtime: `headless Chromium ${browser.version()}, flags ${FLAGS.join(' ')}`, notes: [] };
  if (missing.length) res.notes.push(`ONNX missing for ${missing.join(', ')}: ORT not measured there (run tools/bench/make-onnx.sh).`);
  try {
    const page = await browser.newPage();
    const probe = memoryProbe();
    if (probe) await page.exposeFunction('benchMemory', probe);
    else res.notes.push('Peak memory not measured: /proc/PID/clear_refs is not writable here.');
    page.on('console', (m) => {
      const t = m.text();
      if (m.type() === 'log') log(t);
      // Missing ONNX files were reported above; ORT's node-placement notice is not an error.
      else if (m.type() === 'error' && !/Failed to load resource|VerifyEachNodeIsAssignedToAnEp/.test(t)) log(`console error: ${t}`);
    });
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    await page.goto(`${srv.url}/`);
    await page.waitForFunction(() => window.benchReady === true, null, { timeout: 120000 });
    res.env = await page.evaluate(() => window.benchEnv);
    log(`WebGPU: ${JSON.stringify(res.env.gpu.info || res.env.gpu.why)}${res.env.ortErrors.length ? `; ORT load errors: ${res.env.ortErrors.join('; ')}` : ''}`);
    res.results = await page.evaluate((c) => window.runBench(c), cfg);
    res.config = res.results.config;
    res.models = res.results.models;
    res.readbackFloor = res.results.readbackFloor;
    delete res.results;
    await page.close();
  } finally {
    await browser.close();
    srv.close();
  }
  // The page loads, each in browsers of its own (cold, then warm).
  const plModels = (process.env.BENCH_PAGELOAD_MODELS || (SMOKE ? 'toy2d' : 'mnist,emoji')).split(',').filter((m) => m && m !== 'none');
  const plBackends = (process.env.BENCH_PAGELOAD_BACKENDS || 'auto').split(',').filter(Boolean);
  // The first view as a visitor gets it (the default settings), or for the
  // smoke run the cheapest image (its phases are checked, never its time).
  const plQuery = process.env.BENCH_PAGELOAD_QUERY ?? (SMOKE ? 'steps=2' : '');
  if (plModels.length) res.pageLoad = await pageLoads(plModels, plBackends, plQuery);
  res.wallSeconds = (Date.now() - t0) / 1000;
  res.machine.loadavgEnd = os.loadavg();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const base = path.join(OUT, `bench-${stamp}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(res, null, 1));
  const md = markdown(res);
  fs.writeFileSync(`${base}.md`, md);
  if (!SMOKE) console.log(`\n${md}`);
  console.log(`wrote ${path.relative(ROOT, base)}.json and .md (${res.wallSeconds.toFixed(0)} s)`);
  // 5. The native section, with the browser closed (it would compete for the cores).
  let nat = null;
  if (process.env.BENCH_NATIVE !== '0') {
    nat = await runNative({ smoke: SMOKE, out: OUT, browser: res, log });
    if (!SMOKE) console.log(`\n${nat.md}`);
    console.log(`wrote ${path.relative(ROOT, OUT)}/bench-native.json and .md (${nat.res.wallSeconds.toFixed(0)} s)`);
  }
  if (SMOKE) smokeCheck(res, nat?.res);
  else if (nat && nativeMismatch(nat.res).length) {
    console.error(`bench native: FAIL\n  ${nativeMismatch(nat.res).join('\n  ')}`);
    process.exit(1);
  }
}

/** The smoke run fails when the harness broke (a model that did not load,
 * no timing at all, backends that disagree with ORT wasm on the same input:
 * then the harness compares different things; a page load that drew no
 * image or did not report its phases), never on times. A backend's
 * own error is reported, not failed on: that is the backend's test's job.
 * The comparison with ORT wasm itself must happen on every model (the ONNX
 * graphs are shipped in tools/bench/onnx), unless BENCH_BACKENDS leaves
 * ort-wasm out. The native section's problems (native.mjs, smokeProblems)
 * count too. */
function smokeCheck(res, nat) {
  const bad = nat ? smokeProblems(nat).map((p) => `native: ${p}`) : [];
  const wantOrt = (res.config?.backends || []).includes('ort-wasm');
  for (const m of res.models) {
    if (m.error) { bad.push(`${m.name}: ${m.error}`); continue; }
    let timed = 0;
    let compared = 0;
    for (const [k, b] of Object.entries(m.backends)) {
      if (b.skipped) continue;
      if (b.error) console.log(`bench smoke: warning: ${m.name} ${k}: ${b.error}`);
      timed += Object.values(b.batches || {}).filter((s) => s.median > 0).length;
      for (const [B, d] of Object.entries(b.vsOrtWasm || {})) {
        if (k !== 'ort-wasm') compared++;
        if (!(d.relRms < 1e-2)) bad.push(`${m.name} ${k} (${B}): output differs from ORT wasm (rel. RMS ${d.relRms})`);
      }
    }
    if (!timed) bad.push(`${m.name}: no backend produced a timing`);
    if (wantOrt && m.onnxMissing) bad.push(`${m.name}: ${m.onnxMissing}`);
    else if (wantOrt && !compared) {
      bad.push(`${m.name}: nothing was compared with ORT wasm (${m.backends['ort-wasm']?.error || 'no ORT wasm output'})`);
    }
  }
  // The page load must reach its first image and report every phase
  // (pageload.mjs PHASES), cold and warm.
  for (const p of res.pageLoad || []) {
    if (p.error) bad.push(`page load ${p.model} ${p.cache}: ${p.error}`);
    else if (p.missingPhases?.length) bad.push(`page load ${p.model} ${p.cache}: no phase mark for ${p.missingPhases.join(', ')}`);
  }
  if (!res.pageLoad?.length && process.env.BENCH_PAGELOAD_MODELS !== 'none') bad.push('no page load was measured');
  if (bad.length) {
    console.error(`bench smoke: FAIL\n  ${bad.join('\n  ')}`);
    process.exit(1);
  }
  console.log('bench smoke: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
