// The native section of make bench: our Go backends natively against
// PyTorch on the same CPU, and against the browser's SIMD figures of the
// same run.
//
//   node tools/bench/native.mjs [bench-<date>.json]     (make bench-native)
//
// run.mjs runs it after the browser part (with the browser's results, for
// the "vs browser SIMD" ratios); alone it takes them from a results file
// named on the command line, if any. Per model:
//
// 1. tools/bench/gobench (go test -bench): one network call at batch 1 and
//    16 on every backend benchmark the package has, whatever their names
//    (BenchmarkX/<model>/b<batch>: CPU = the plain-Go reference, SIMD = the
//    browser's kernels under wazero, Native = the fast native backend where
//    the tree has it): ms per call (ns/op) and GFLOP/s.
// 2. bin/diffuse sample (built here): DDIM, 25 steps, 16 images in one
//    batch, end to end (process start to exit, weights load included), with
//    --backend fast when the CLI's usage lists --backend; class-conditional
//    models with --class 3 --guidance 2 (their card's setting; both passes
//    in one call of 32).
// 3. tools/bench/torch_cpu.py (PyTorch, /usr/bin/python3 or BENCH_PYTHON):
//    the same networks with the same weights, checked against diffuse eval,
//    on as many threads as the Go benchmarks' GOMAXPROCS; per call and the
//    same sample. Skipped, and said so, without PyTorch.
//
// Writes $BENCH_OUT/bench-native.json and .md. Ratios are the other's time
// over ours, as in lib.mjs's "vs ORT": above 1× ours is faster. "Ours" is
// the Native benchmark and the CLI's fast backend where they exist, else the
// reference backend (say so in the table).
//
// Settings: BENCH_MODELS; BENCH_NATIVE_ITERS (default 3: go test
// -benchtime Nx, and PyTorch's timed calls after one warm-up);
// BENCH_NATIVE_SAMPLE_BACKENDS (CLI backends timed for the sample when
// the CLI has --backend; default "fast"; "fast,reference" adds the slow
// reference; "none" times no sample); BENCH_PYTHON; BENCH_TORCH_THREADS
// (default: the Go benchmarks' GOMAXPROCS); BENCH_OUT. BENCH_SMOKE=1: toy2d only, one call
// each, a 2-step sample of 2 images, and PyTorch checked against diffuse
// eval on every shipped model: checks that every part runs and that PyTorch
// computes what our networks do, never the times.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, HERE, machine } from './lib.mjs';

export const MODELS = ['mnist', 'emoji', 'scoresde-mnist', 'toy2d'];
/** What each gobench benchmark measures; an unknown one is shown by its name. */
const GO_NAMES = { CPU: 'reference (plain Go)', SIMD: 'SIMD kernels under wazero', Native: 'Native (fast)' };
const GO_ORDER = ['CPU', 'SIMD', 'Native'];

// ---------- parsing ----------

/** Parses `go test -bench` output: {procs, results: {Bench: {model: {batch: {n, ms, gflops}}}}, skipped}.
 * procs is GOMAXPROCS as the -N name suffix gives it (none: 1); skipped lists the
 * sub-benchmarks that called b.Skip ("Bench/model/bB"). Other lines (logs, PASS) are ignored. */
export function parseGoBench(text) {
  const results = {};
  const skipped = [];
  let procs = null;
  for (const line of text.split('\n')) {
    const sk = /^--- SKIP: Benchmark(\S+\/b\d+)/.exec(line.trim());
    if (sk) skipped.push(sk[1]);
    const m = /^Benchmark([A-Za-z0-9_]+)\/([^/\s]+)\/b(\d+)(?:-(\d+))?\s+(\d+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, bench, model, batch, p, n, rest] = m;
    const metrics = {};
    for (const [, v, unit] of rest.matchAll(/([0-9.eE+-]+)\s+(\S+)/g)) metrics[unit] = Number(v);
    if (!(metrics['ns/op'] > 0)) continue;
    procs = p ? Number(p) : 1;
    ((results[bench] ||= {})[model] ||= {})[batch] = { n: Number(n), ms: metrics['ns/op'] / 1e6, gflops: metrics['GFLOP/s'] ?? null };
  }
  return { procs, results, skipped };
}

/** Whether `diffuse sample`'s usage (its -h output) lists a --backend flag. */
export const cliHasBackend = (usage) => /^\s*-{1,2}backend\b/m.test(usage);

/** The CLI's own summary line ("16 samples with ddim: 25 network calls in 4.2s"): the
 * sampling loop's seconds (no process start or weights load) and its network calls. */
export function cliSummary(stderr) {
  const m = /(\d+) samples with \S+: (\d+) network calls in ([0-9.]+)s/.exec(stderr);
  return m ? { loopS: Number(m[3]), nfe: Number(m[2]) } : {};
}

/** The safetensors header's metadata (our files keep the model's config there). */
export function fileMeta(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const h = Buffer.alloc(Number(len.readBigUInt64LE(0)));
    fs.readSync(fd, h, 0, h.length, 8);
    return JSON.parse(h.toString('utf8')).__metadata__ || {};
  } finally {
    fs.closeSync(fd);
  }
}

/** The CLI's sample flags for a model: guided, with one class, where it is class-conditional
 * and has a null class (as tools/train/train_mnist.py samples it). */
export function sampleFlags(meta) {
  let cfg = {};
  try { cfg = JSON.parse(meta['diffuse.config'] || '{}'); } catch { /* not ours */ }
  if (cfg.num_class_embeds == null) return [];
  return meta['diffuse.null_class'] != null ? ['--class', '3', '--guidance', '2'] : ['--class', '3'];
}

/** The browser's SIMD figures for a model out of run.mjs's results: per batch and the sample,
 * helper threads where measured, else one thread. */
export function browserSimd(browser, model) {
  const m = browser?.models?.find((r) => r.name === model);
  const out = {};
  for (const k of ['simd-threads', 'simd']) {
    const b = m?.backends?.[k];
    if (!b || b.skipped) continue;
    for (const [B, s] of Object.entries(b.batches || {})) if (s?.median > 0 && !out[B]) out[B] = { ms: s.median, backend: k };
    if (b.sample?.ms > 0 && !out.sample) out.sample = { ms: b.sample.ms, steps: b.sample.steps, batch: b.sample.batch, backend: k };
  }
  return out;
}

// ---------- the table ----------

const fmtMs = (v) => (v == null ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${v.toFixed(0)} ms` : v >= 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(2)} ms`);
/** other / ours: above 1× ours is faster. */
export const ratio = (ours, other) => (ours > 0 && other > 0 ? `${(other / ours).toFixed(2)}×` : '–');

/** The rows of the table: per model, one per batch size and one for the sample. */
export function rows(res) {
  const go = res.goBench?.results || {};
  // The CLI's fast sample goes in the Native column, which it needs even where the tree has no BenchmarkNative.
  const cliFast = Object.values(res.cli?.samples || {}).some((s) => s.fast);
  const benches = [...new Set([...Object.keys(go), ...(cliFast ? ['Native'] : [])])].sort((a, b) => (GO_ORDER.indexOf(a) + 1 || 99) - (GO_ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
  const oursBench = go.Native ? 'Native' : 'CPU';
  const out = [];
  for (const model of res.config.models) {
    const torch = res.torch?.models?.find((m) => m.name === model);
    const br = browserSimd(res.browser, model);
    for (const B of res.config.batches) {
      const r = { model, what: `b${B} per call`, go: {}, torch: torch?.perCall?.[B]?.median, browser: br[B] };
      for (const k of benches) r.go[k] = go[k]?.[model]?.[B];
      // PyTorch's GFLOP/s from our operation count (tools/bench/flops).
      const gemm = res.flops?.[model]?.[B];
      if (gemm > 0 && r.torch > 0) r.torchGflops = gemm / (r.torch * 1e6);
      r.ours = r.go[oursBench]?.ms;
      r.reference = r.go.CPU?.ms;
      out.push(r);
    }
    const s = res.cli?.samples?.[model] || {};
    const oursKey = s.fast ? 'fast' : 'reference';
    const t = torch?.sample;
    const r = { model, what: `DDIM ${res.config.sampleSteps}×${res.config.sampleN}${s.guided ? ', guided' : ''}`, go: {}, sample: true };
    r.ours = s[oursKey]?.ms;
    r.reference = s.reference?.ms;
    r.cli = s;
    r.torch = t?.ms;
    // The browser's sample is unguided: only comparable when ours is too, at the same size.
    r.browser = br.sample && !s.guided && br.sample.steps === res.config.sampleSteps && br.sample.batch === res.config.sampleN ? br.sample : null;
    out.push(r);
  }
  return { rows: out, benches, oursBench };
}

/** The markdown report of one native run. */
export function nativeMarkdown(res) {
  const L = [];
  const m = res.machine;
  const { rows: rs, benches, oursBench } = rows(res);
  const hasNative = oursBench === 'Native';
  L.push(`## ${res.title} — ${res.date}`);
  L.push('');
  L.push(`- Machine: ${m.cpu}, ${m.cores} cores${m.cpuFlags ? ` (${m.cpuFlags})` : ''}, ${m.memGiB} GiB, ${m.os}; load average (1, 5, 15 min) at start ${m.loadavg.map((v) => v.toFixed(2)).join(' ')}${m.loadavgEnd ? `, at end ${m.loadavgEnd.map((v) => v.toFixed(2)).join(' ')}` : ''}`);
  L.push(`- Go: ${res.go}, GOMAXPROCS ${res.goBench?.procs ?? '?'}; tools/bench/gobench with -benchtime ${res.config.benchtime} (ms per call = ns/op, the mean of those calls after one untimed). GFLOP/s counts the convolutions', linears' and attention's multiply-adds ×2 (tools/bench/flops), PyTorch's over its median.`);
  const tc = res.torch;
  L.push(`- PyTorch: ${tc?.skipped ? `not measured (${tc.skipped})` : tc?.error ? `error: ${tc.error}` : `${tc?.torch}, ${tc?.threads} threads, median of ${tc?.config?.iters} calls after ${tc?.config?.warmup} warm-up; tools/bench/torch_cpu.py`}`);
  const checks = (tc?.models || []).filter((x) => x.check && !x.check.skipped);
  if (checks.length) L.push(`- Same network: PyTorch's output at batch 2 against \`diffuse eval\`'s, relative RMS difference ${checks.map((x) => `${x.name} ${x.check.relRms != null ? x.check.relRms.toExponential(1) : x.check.error}${x.check.ok ? '' : ' (FAILED)'}`).join(', ')}`);
  L.push(`- Sample: \`bin/diffuse sample --sampler ddim --steps ${res.config.sampleSteps} --n ${res.config.sampleN} --batch ${res.config.sampleN}\`${res.cli?.hasBackend ? ' --backend B' : ''}, class-conditional models with \`--class 3 --guidance 2\` (one call of twice the batch per step); wall time of the process, weights load included (in brackets the CLI's own figure for its sampling loop, 0.1 s steps, and its network calls). PyTorch: the same DDIM in tools/train (common.DDPM.ddim_sample, train_scoresde.ddim_ve) after an untimed 2-step one.`);
  L.push(`- "Ours" is ${hasNative ? 'the Native benchmark and the CLI with --backend fast' : `the plain-Go reference (CPU benchmark, the CLI${res.cli?.hasBackend ? ' with --backend reference' : ''}): this tree has no BenchmarkNative yet`}. Ratios are the other's time / ours: above 1× ours is faster. "vs browser SIMD" takes the browser's SIMD backend of the same run (helper threads where measured, marked ¹ where one thread); the browser's sample is unguided, so guided rows have none.`);
  // PyTorch's OpenMP threads wait for each other by spinning: on cores that other processes
  // also use, its per-call times grow many-fold (1 thread 165 ms, 2 threads 3.1 s on mnist b1
  // at load 6-8 on 2 cores, 2026-12-07), Go's far less.
  const busy = Math.max(m.loadavg[0], m.loadavgEnd?.[0] ?? 0);
  if (busy > m.cores / 2) L.push(`- **Busy machine**: load average up to ${busy.toFixed(1)} on ${m.cores} cores. Timings are indicative only, PyTorch's most of all: its threads spin-wait for each other, so on shared cores it slows down many-fold (BENCH_TORCH_THREADS=1 shows how much).`);
  L.push('');
  const head = ['model', 'what', ...benches.map((k) => GO_NAMES[k] || k), `PyTorch CPU${tc?.threads ? ` (${tc.threads} thr.)` : ''}`, 'browser SIMD',
    `${hasNative ? 'Native' : 'ours'} vs reference`, `${hasNative ? 'Native' : 'ours'} vs PyTorch`, `${hasNative ? 'Native' : 'ours'} vs browser SIMD`];
  L.push(`| ${head.join(' | ')} |`);
  L.push(`|${head.map(() => '---').join('|')}|`);
  for (const r of rs) {
    const cells = [r.model, r.what];
    for (const k of benches) {
      if (r.sample) {
        const key = k === 'CPU' ? 'reference' : k === 'Native' ? 'fast' : null;
        const s = key && r.cli?.[key];
        cells.push(s?.error ? `error: ${s.error.slice(0, 60)}` : `${fmtMs(s?.ms)}${s?.loopS != null ? ` (loop ${s.loopS} s, ${s.nfe} calls)` : ''}`);
      } else {
        const g = r.go[k];
        cells.push(g ? `${fmtMs(g.ms)}${g.gflops != null ? ` (${g.gflops.toFixed(2)} GFLOP/s)` : ''}` : '–');
      }
    }
    cells.push(`${fmtMs(r.torch)}${r.torchGflops ? ` (${r.torchGflops.toFixed(2)} GFLOP/s)` : ''}`);
    const b = r.browser;
    const mark = b?.backend === 'simd' ? '¹' : '';
    cells.push(b ? `${fmtMs(b.ms)}${mark}` : '–');
    cells.push(hasNative ? ratio(r.ours, r.reference) : '–', ratio(r.ours, r.torch), b ? `${ratio(r.ours, b.ms)}${mark}` : '–');
    L.push(`| ${cells.join(' | ')} |`);
  }
  L.push('');
  for (const n of res.notes || []) L.push(`- ${n}`);
  if (res.notes?.length) L.push('');
  return L.join('\n');
}

/** What makes the smoke run fail: the harness broke, never the times. */
export function smokeProblems(res) {
  const bad = [];
  const go = res.goBench?.results || {};
  if (!Object.keys(go).length) bad.push(`go test -bench gave no results${res.goBench?.error ? ` (${res.goBench.error})` : ''}`);
  for (const model of res.config.models) {
    if (!go.CPU?.[model]) bad.push(`${model}: no BenchmarkCPU result`);
    for (const [k, byModel] of Object.entries(go)) {
      // A benchmark that skipped (b.Skip: that backend cannot run this model) is a note, not a broken harness.
      for (const B of res.config.batches) {
        if (!(byModel[model]?.[B]?.ms > 0) && !res.goBench.skipped?.includes(`${k}/${model}/b${B}`)) bad.push(`${model}: Benchmark${k} b${B} missing`);
      }
    }
    const s = res.cli?.samples?.[model] || {};
    const timed = Object.values(s).filter((v) => v?.ms > 0).length;
    for (const [k, v] of Object.entries(s)) if (v?.error) bad.push(`${model}: diffuse sample (${k}): ${v.error}`);
    if (!timed) bad.push(`${model}: diffuse sample was not timed`);
  }
  const t = res.torch;
  if (t?.error) bad.push(`torch_cpu.py: ${t.error}`);
  else if (!t?.skipped) {
    for (const m of t?.models || []) if (!m.check?.ok) bad.push(`${m.name}: PyTorch vs diffuse eval: ${JSON.stringify(m.check)}`);
    for (const model of res.config.models) {
      const m = t?.models?.find((x) => x.name === model);
      if (!m) bad.push(`${model}: not in torch_cpu.py's output`);
      else if (!(m.perCall?.[res.config.batches[0]]?.median > 0) || !(m.sample?.ms > 0) || !m.sample.finite) bad.push(`${model}: PyTorch not timed (or its sample is not finite)`);
    }
  }
  return bad;
}

/** What fails a measuring run too: PyTorch computing something else than our network
 * (then its times compare different things). */
export const nativeMismatch = (res) => (res.torch?.models || []).filter((m) => m.check?.ok === false)
  .map((m) => `${m.name}: PyTorch and diffuse eval disagree (${m.check.error || `relative RMS ${m.check.relRms}`})`);

// ---------- running ----------

/** Runs a command, logging its lines as they come; resolves {code, stdout, stderr}. */
function run(cmd, args, { env, onLine, onErrLine } = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const parts = ['', ''];
    const lines = (i, d, f) => {
      parts[i] += d;
      const ls = parts[i].split('\n');
      parts[i] = ls.pop();
      for (const l of ls) f?.(l);
    };
    p.stdout.on('data', (d) => { stdout += d; lines(0, d, onLine); });
    p.stderr.on('data', (d) => { stderr += d; lines(1, d, onErrLine); });
    p.on('error', (e) => resolve({ code: -1, stdout, stderr: String(e.message) }));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const lastLine = (s) => s.trim().split('\n').filter(Boolean).pop() || '';

export async function runNative({ smoke = false, out, browser = null, log = console.log } = {}) {
  const t0 = Date.now();
  fs.mkdirSync(out, { recursive: true });
  const models = smoke ? ['toy2d'] : (process.env.BENCH_MODELS ? process.env.BENCH_MODELS.split(',').map((s) => s.trim()).filter(Boolean) : MODELS)
    .filter((m) => fs.existsSync(path.join(ROOT, 'weights', `${m}.safetensors`)));
  const checkModels = MODELS.filter((m) => fs.existsSync(path.join(ROOT, 'weights', `${m}.safetensors`)));
  const iters = smoke ? 1 : Number(process.env.BENCH_NATIVE_ITERS || 3);
  const config = { models, batches: [1, 16], benchtime: `${iters}x`, iters, sampleSteps: smoke ? 2 : 25, sampleN: smoke ? 2 : 16, seed: 1 };
  const res = {
    title: smoke ? 'Native smoke run (not a measurement)' : 'make bench, native section (Go backends and PyTorch on this CPU)',
    date: new Date().toISOString().slice(0, 10), machine: machine(), go: execFileSync('go', ['env', 'GOVERSION']).toString().trim(), config, notes: [],
  };
  if (browser?.models) res.browser = { date: browser.date, browser: browser.browser, models: browser.models.map((m) => ({ name: m.name, backends: Object.fromEntries(['simd', 'simd-threads'].filter((k) => m.backends?.[k]).map((k) => [k, m.backends[k]])) })) };

  // 1. gobench
  const alt = (xs) => `^(${xs.map((x) => x.replace(/[.+*?^$()[\]{}|\\-]/g, '\\$&')).join('|')})$`;
  const bench = `.*/${alt(models)}/${alt(config.batches.map((b) => `b${b}`))}`;
  log(`native: go test -bench '${bench}' -benchtime ${config.benchtime} ./tools/bench/gobench`);
  const g = await run('go', ['test', '-run', '^$', '-bench', bench, '-benchtime', config.benchtime, '-timeout', '0', './tools/bench/gobench'],
    { onLine: (l) => { if (/^Benchmark|SKIP|FAIL|panic/.test(l.trim())) log(`native: ${l.trim()}`); } });
  res.goBench = parseGoBench(g.stdout);
  if (g.code !== 0) res.goBench.error = `go test exited with ${g.code}: ${lastLine(g.stderr) || lastLine(g.stdout)}`;
  for (const k of res.goBench.skipped) res.notes.push(`gobench: Benchmark${k} skipped`);
  const procs = Number(process.env.BENCH_TORCH_THREADS) || res.goBench.procs || os.availableParallelism();

  // Our operation count per call (tools/bench/cmd/flops), for PyTorch's GFLOP/s.
  try {
    const fl = JSON.parse(execFileSync('go', ['run', './tools/bench/cmd/flops', '-json', '-batch', config.batches.join(','),
      ...models.map((m) => path.join('weights', `${m}.safetensors`))], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }).toString());
    res.flops = {};
    for (const f of fl) (res.flops[f.model] ||= {})[f.batch] = f.flops.gemm;
  } catch (e) {
    res.notes.push(`tools/bench/cmd/flops failed (${String(e.message).split('\n')[0]}): no PyTorch GFLOP/s`);
  }

  // 2. the CLI's sample
  const bin = path.join(ROOT, 'bin', 'diffuse');
  execFileSync('go', ['build', '-o', bin, './tools/diffuse'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const usage = (await run(bin, ['sample', '-h'])).stderr;
  const hasBackend = cliHasBackend(usage);
  const want = process.env.BENCH_NATIVE_SAMPLE_BACKENDS || 'fast';
  const backends = want === 'none' ? [] : hasBackend ? want.split(',').map((s) => s.trim()).filter(Boolean) : ['reference'];
  if (!backends.length) res.notes.push('diffuse sample not timed (BENCH_NATIVE_SAMPLE_BACKENDS=none).');
  res.cli = { hasBackend, samples: {} };
  const npy = path.join(out, 'native-sample.npy'); // the CLI wants an output; not kept
  for (const model of models) {
    const w = path.join(ROOT, 'weights', `${model}.safetensors`);
    const extra = sampleFlags(fileMeta(w));
    const s = (res.cli.samples[model] = { guided: extra.includes('--guidance') });
    for (const b of backends) {
      const args = ['sample', '--weights', w, '--sampler', 'ddim', '--steps', String(config.sampleSteps), '--n', String(config.sampleN),
        '--batch', String(config.sampleN), '--seed', String(config.seed), '--out-npy', npy, ...extra, ...(hasBackend ? ['--backend', b] : [])];
      const ts = performance.now();
      const r = await run(bin, args);
      const ms = performance.now() - ts;
      fs.rmSync(npy, { force: true });
      s[b] = r.code === 0 ? { ms, ...cliSummary(r.stderr) } : { error: lastLine(r.stderr) || `exit ${r.code}` };
      log(`native: diffuse sample ${model}${hasBackend ? ` --backend ${b}` : ''}: ${r.code === 0 ? fmtMs(ms) : `ERROR ${s[b].error}`}`);
    }
  }

  // 3. PyTorch
  const py = process.env.BENCH_PYTHON || '/usr/bin/python3';
  const tjson = path.join(out, 'torch-cpu.json');
  fs.rmSync(tjson, { force: true });
  const targs = [path.join(HERE, 'torch_cpu.py'), '--threads', String(procs), '--diffuse', bin, '--out', tjson,
    '--warmup', smoke ? '0' : '1', '--iters', String(iters), '--steps', String(config.sampleSteps), '--n', String(config.sampleN), '--seed', String(config.seed),
    // The smoke run times toy2d only but checks every shipped network against diffuse eval (one call at batch 2 each).
    ...(smoke ? ['--time', models.join(','), ...checkModels] : models)];
  log(`native: ${py} tools/bench/torch_cpu.py --threads ${procs} …`);
  const tr = await run(py, targs, { onErrLine: (l) => { if (l.trim()) log(`native: ${l}`); } });
  if (fs.existsSync(tjson)) res.torch = JSON.parse(fs.readFileSync(tjson, 'utf8'));
  else if (tr.code === -1) res.torch = { skipped: `no Python at ${py} (${tr.stderr}; set BENCH_PYTHON)` };
  else res.torch = { error: `torch_cpu.py exited with ${tr.code}: ${lastLine(tr.stderr)}` };
  if (tr.code > 0 && !res.torch.error) res.torch.error = `torch_cpu.py exited with ${tr.code}: ${lastLine(tr.stderr)}`;

  res.machine.loadavgEnd = os.loadavg();
  res.wallSeconds = (Date.now() - t0) / 1000;
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'bench-native.json'), JSON.stringify(res, null, 1));
  const md = nativeMarkdown(res);
  fs.writeFileSync(path.join(out, 'bench-native.md'), md);
  return { res, md };
}

// ---------- make bench-native ----------

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const smoke = process.env.BENCH_SMOKE === '1';
  const out = path.resolve(process.env.BENCH_OUT || path.join(ROOT, 'dist', smoke ? 'bench-smoke' : 'bench'));
  const browser = process.argv[2] ? JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) : null;
  const t0 = Date.now();
  const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
  runNative({ smoke, out, browser, log }).then(({ res, md }) => {
    console.log(`\n${md}`);
    console.log(`wrote ${path.relative(ROOT, out)}/bench-native.json and .md (${res.wallSeconds.toFixed(0)} s)`);
    const bad = smoke ? smokeProblems(res) : nativeMismatch(res);
    if (bad.length) {
      console.error(`bench native: FAIL\n  ${bad.join('\n  ')}`);
      process.exit(1);
    }
  }).catch((e) => { console.error(e); process.exit(1); });
}
