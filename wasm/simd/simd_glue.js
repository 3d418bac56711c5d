// simd_glue.js: connects wasm/simd's SIMD128 kernel module (kernels.wasm)
// to a Go WebAssembly program that links the wasm/simd package.
//
// The Go program imports its kernels as `//go:wasmimport simd <name>` and
// passes them addresses in its own linear memory. The kernel module imports
// its memory (env.memory), so it must be instantiated over the Go instance's
// exported memory `mem` — which exists only once the Go instance does. So:
//
//   1. before the Go module is instantiated, attachSimd adds
//      go.importObject.simd: one small trampoline per kernel;
//   2. when go.run(instance) is called, the kernel module is instantiated
//      with { env: { memory: instance.exports.mem } } and the trampolines are
//      pointed at its exports; then Go starts.
//
// Usage, next to Go's wasm_exec.js:
//
//   import { attachSimd } from './simd_glue.js';
//   const go = new Go();
//   await attachSimd(go, ['kernels_relaxed.wasm', 'kernels.wasm'],
//                    { shared: ['kernels_relaxed_shared.wasm', 'kernels_shared.wasm'] });
//   const { instance } = await WebAssembly.instantiateStreaming(fetch('main.wasm'), go.importObject);
//   go.run(instance);
//
// A Go binary that links wasm/simd cannot be instantiated without the
// `simd` imports, so call attachSimd even where SIMD may be missing: when
// kernels.wasm cannot be compiled (a browser without WebAssembly SIMD) it
// installs stubs, the kernels' abi() reports 0, and simd.NewDenoiser returns
// an error, so the page can fall back to another backend.
//
// Threads. One wasm thread tops out at the CPU's f32x4 rate (about 40
// GFLOP/s on the 2-core Xeon we measure on), so large GEMMs are split by
// columns over helper threads (simd_thread.js). Go's memory is not shared
// (Go's wasm port has no threads), so a helper cannot read it: the glue
// copies each helper's operands into a shared memory of its own, the
// helpers run the shared twin of the same kernel module there, and the glue
// copies their columns of C back. Every column is computed by the same code
// whatever the split, so results are bit-identical to one thread. Threads
// need SharedArrayBuffer: a cross-origin isolated page (tools/serve sends
// the COOP/COEP headers) or Node; elsewhere everything runs on one thread.

const notReady = () => {
  throw new Error('simd: kernel called before the Go instance ran (attachSimd wraps go.run)');
};

/**
 * Prepares `go` (a Go instance from wasm_exec.js) to run with the SIMD
 * kernels. `kernels` is a kernel module as a BufferSource, a Response or a
 * promise of one, a WebAssembly.Module, or a URL string — or an array of
 * them in order of preference: the first that compiles is used. The
 * generator writes two with the same ABI: kernels_relaxed.wasm (its GEMM uses
 * relaxed-SIMD f32x4.relaxed_madd, an FMA: Chrome 114+, Firefox 145+) and
 * kernels.wasm (plain SIMD128: every browser with WebAssembly SIMD).
 *
 * options (all optional):
 *   shared:  the shared-memory twins of `kernels`, in the same order
 *            (kernels_relaxed_shared.wasm, kernels_shared.wasm); without
 *            them everything runs on one thread;
 *   threads: threads for large GEMMs, this one included (default: the
 *            CPU's cores, at most 4; 1 turns helpers off);
 *   threadScript: where simd_thread.js is (default: next to this file; pass
 *            it when this file was loaded from a data: URL);
 *   stallMs: how long a GEMM waits for a helper before it stops using
 *            helpers and computes the helper's columns itself (default
 *            10 s: a worker that died or is never scheduled).
 *
 * Resolves to { simd: true, index, threads, stats } when a module compiled
 * (index: which candidate; threads: how many GEMMs may use; stats counts
 * GEMMs split, column ranges a helper computed, and helper jobs given up
 * on), { simd: false, error } when none did (Go then sees no kernels).
 * Call it before instantiating the Go module.
 */
export async function attachSimd(go, kernels, options = {}) {
  let module = null;
  let error = null;
  let index = -1;
  const candidates = Array.isArray(kernels) ? kernels : [kernels];
  for (let i = 0; i < candidates.length && module === null; i++) {
    try {
      module = await compileKernels(candidates[i]);
      index = i;
    } catch (e) {
      error = e;
    }
  }

  if (module === null) {
    // Stubs for whatever the Go binary imports: abi() = 0 means "no kernels".
    go.importObject.simd = new Proxy({}, {
      get: (_, name) => name === 'abi' ? () => 0 : () => {
        throw new Error(`simd: ${String(name)} called without kernels (${error})`);
      },
    });
    return { simd: false, error };
  }

  await warmUp(module, new WebAssembly.Memory({ initial: 5 }));
  const pool = await startPool(options, index);

  const slots = new Map();
  const imports = {};
  for (const { name, kind } of WebAssembly.Module.exports(module)) {
    if (kind !== 'function') continue;
    const slot = { f: notReady };
    slots.set(name, slot);
    // Fixed arity (the longest kernel signature has 11 parameters): no rest
    // arguments array per call. Extra arguments are ignored by wasm.
    imports[name] = (a, b, c, d, e, f, g, h, i, j, k) => slot.f(a, b, c, d, e, f, g, h, i, j, k);
  }
  go.importObject.simd = imports;

  const run = go.run.bind(go);
  go.run = async (instance) => {
    const memory = instance.exports.mem;
    const kernelInstance = await WebAssembly.instantiate(module, { env: { memory } });
    for (const [name, slot] of slots) slot.f = kernelInstance.exports[name];
    if (pool !== null) slots.get('gemm').f = pool.gemm(kernelInstance.exports, memory);
    try {
      return await run(instance);
    } finally {
      pool?.close();
    }
  };
  return {
    simd: true, index, threads: pool === null ? 1 : pool.threads, stats: pool === null ? { splits: 0, helped: 0, stalls: 0 } : pool.stats,
    // setThreads(n) caps the threads later GEMMs use (1: none of the
    // helpers; at most `threads`), for a setting or an A/B benchmark.
    setThreads: (n) => { if (pool !== null) pool.limit = Math.max(1, Math.min(pool.threads, Math.floor(n))); },
  };
}

// warmUp runs the kernels' own warmup export on a throwaway instance until
// V8 has optimized them. V8 compiles wasm with a baseline compiler first and
// optimizes a function after it has run a while, in a background queue; once
// the Go module runs, its many functions fill that queue and the kernels
// could stay on baseline code (4x slower) for many sampler steps. Optimized
// code belongs to the compiled module, so the Go-memory instance gets it.
// memory must hold the warmup's 256 KiB scratch (5 pages).
async function warmUp(module, memory) {
  try {
    const { exports } = await WebAssembly.instantiate(module, { env: { memory } });
    if (typeof exports.warmup !== 'function') return;
    const start = performance.now();
    let first = -1;
    for (let i = 0; i < 40; i++) {
      const t = performance.now();
      exports.warmup(0, 10);
      const dt = performance.now() - t;
      if (first < 0) first = dt;
      else if (dt < first / 4 || performance.now() - start > 300) break;
    }
  } catch {
    // Warming up only saves time; the kernels work without it.
  }
}

async function compileKernels(k) {
  if (k instanceof WebAssembly.Module) return k;
  if (typeof k === 'string' || k instanceof URL) k = fetch(k);
  k = await k;
  if (typeof Response !== 'undefined' && k instanceof Response) {
    if (!k.ok) throw new Error(`kernels.wasm: HTTP ${k.status}`);
    k = await k.arrayBuffer();
  }
  return WebAssembly.compile(k);
}

// The control block at the start of the pool's shared memory, as int32
// words: the job sequence number, the quit flag, then one slot per job
// with gemm's ten arguments (byte addresses in the shared memory), the
// sequence number of the job's last completion, a failure flag, and its
// claim word (2·seq while job seq waits, 2·seq+1 once a thread took it).
const LAYOUT = { seq: 0, quit: 1, slotBase: 16, slotInts: 16, done: 10, failed: 11, claim: 12, ints: 1024 };
const CTRL_BYTES = 4 * LAYOUT.ints;
const MAX_JOBS = (LAYOUT.ints - LAYOUT.slotBase) / LAYOUT.slotInts; // 63
const MAX_THREADS = 8;
// A split GEMM has CHUNKS_PER_THREAD column ranges per thread: the caller
// computes the first in place, and every thread claims the others one at a
// time. So a helper that the OS runs late (a busy machine) only costs the
// copies: the caller takes the ranges nobody has claimed yet.
const CHUNKS_PER_THREAD = 2;

// A GEMM is split only when it has at least SPLIT_MACS multiply-adds (about
// 50 µs on one thread): below that, copying operands and waking a helper
// cost more than the helper saves.
const SPLIT_MACS = 1 << 21;
// The pool's shared memory grows on demand up to this many 64 KiB pages
// (1 GiB); a GEMM whose operands do not fit runs on one thread.
const MAX_PAGES = 16384;
// How long helpers spin for the next job before they sleep, and how long
// the caller waits for a job a helper claimed before it stops using helpers
// and computes the job's columns itself (a worker that died mid-job).
const SPIN_MS = 1;
const STALL_MS = 10000; // options.stallMs

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

async function defaultThreads() {
  const cores = isNode ? (await import('node:os')).availableParallelism() : (globalThis.navigator?.hardwareConcurrency || 1);
  return Math.min(4, cores);
}

// startPool starts the GEMM helper threads options ask for, or returns
// null when there are none to start (no shared twin, one thread, no
// SharedArrayBuffer, or a failure to start them: threads only save time).
async function startPool(options, index) {
  const twin = options.shared?.[index];
  if (twin === undefined || globalThis.crossOriginIsolated === false) return null;
  const threads = Math.min(MAX_THREADS, Math.floor(options.threads ?? await defaultThreads()));
  if (!(threads > 1)) return null;
  const workers = [];
  try {
    const module = await compileKernels(twin);
    const memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    await warmUp(module, memory);
    const script = options.threadScript ?? new URL('simd_thread.js', import.meta.url);
    const ready = [];
    for (let i = 0; i < threads - 1; i++) {
      const w = await newWorker(script);
      workers.push(w);
      ready.push(w.first);
      w.post({ module, memory, layout: { ...LAYOUT, maxJobs: MAX_JOBS, spinMs: SPIN_MS } });
    }
    for (const r of await Promise.all(ready)) {
      if (!r.ready) throw new Error(r.error || 'helper thread did not start');
    }
    return new GemmPool(memory, workers, options.stallMs ?? STALL_MS);
  } catch {
    for (const w of workers) w.terminate();
    return null;
  }
}

// newWorker starts simd_thread.js as a browser Worker or a Node
// worker_threads Worker behind one small interface; first resolves to its
// first message (or { error } when it fails to start).
async function newWorker(script) {
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(script instanceof URL || !/^[a-z]+:/i.test(script) ? script : new URL(script));
    w.unref(); // helpers never keep a Node process alive
    const first = new Promise((resolve) => {
      w.once('message', resolve);
      w.once('error', (e) => resolve({ error: String(e) }));
    });
    return { post: (m) => w.postMessage(m), terminate: () => w.terminate(), first };
  }
  const w = new Worker(script);
  const first = new Promise((resolve) => {
    w.onmessage = (e) => { w.onmessage = null; resolve(e.data); };
    w.onerror = (e) => resolve({ error: e.message || 'worker error' });
  });
  return { post: (m) => w.postMessage(m), terminate: () => w.terminate(), first };
}

const align16 = (b) => (b + 15) & ~15;

// GemmPool splits large GEMMs by columns between the calling thread and its
// helpers. B is packed in panels of NR columns (each k·NR floats, contiguous),
// so a column range that starts on a panel boundary is one contiguous piece
// of B. The caller computes the first range in Go's memory itself; every
// other range is a job with a copy of A, its piece of B (and of the bias and
// the residual) and a C of its own in the shared memory. Threads claim jobs
// by compare-and-swap; a job the caller claims it computes in Go's memory
// (its copies go unused), a job a helper claims the caller copies back.
class GemmPool {
  constructor(memory, workers, stallMs) {
    this.memory = memory;
    this.stallMs = stallMs;
    this.workers = workers;
    this.threads = workers.length + 1;
    this.limit = this.threads; // setThreads
    this.ctrl = new Int32Array(memory.buffer, 0, LAYOUT.ints);
    this.stats = { splits: 0, helped: 0, stalls: 0 };
    this.alive = true;
    // Atomics.wait throws on a browser's main thread; there the caller spins.
    try { Atomics.wait(this.ctrl, LAYOUT.ints - 1, 1, 0); this.canSleep = true; } catch { this.canSleep = false; }
  }

  close() {
    if (!this.alive) return;
    this.alive = false;
    Atomics.store(this.ctrl, LAYOUT.quit, 1);
    Atomics.add(this.ctrl, LAYOUT.seq, 1);
    Atomics.notify(this.ctrl, LAYOUT.seq);
    for (const w of this.workers) w.terminate();
  }

  // gemm returns the trampoline target for the kernel `gemm` of the Go
  // instance's kernel exports k over Go's memory goMem (same arguments as
  // the kernel: byte addresses into Go's memory).
  gemm(k, goMem) {
    const mr = k.gemm_mr(), nr = k.gemm_nr();
    return (ap, bp, c, ldc, m, n, kd, bias, res, flags) => {
      const panels = Math.ceil(n / nr);
      const chunks = Math.min(this.limit * CHUNKS_PER_THREAD, panels, MAX_JOBS + 1);
      if (!this.alive || this.limit < 2 || chunks < 2 || m * n * kd < SPLIT_MACS) return k.gemm(ap, bp, c, ldc, m, n, kd, bias, res, flags);
      const cols = Math.ceil(panels / chunks) * nr; // columns per chunk, whole panels
      const seq = Atomics.load(this.ctrl, LAYOUT.seq) + 1;
      const jobs = this.stage(seq, mr, nr, cols, goMem, ap, bp, ldc, m, n, kd, bias, res, flags);
      if (jobs === null) return k.gemm(ap, bp, c, ldc, m, n, kd, bias, res, flags);
      this.stats.splits++;
      Atomics.store(this.ctrl, LAYOUT.seq, seq);
      Atomics.notify(this.ctrl, LAYOUT.seq);
      // In place, from Go's memory: the first chunk, then any job no helper
      // has claimed yet.
      const inPlace = (j0, nh) => k.gemm(ap, bp + 4 * j0 * kd, c + 4 * j0, ldc, m, nh, kd,
        flags & 2 ? bias + 4 * j0 : bias, res ? res + 4 * j0 : 0, flags);
      inPlace(0, cols);
      const helped = [];
      for (const job of jobs) {
        if (this.claim(job, seq)) inPlace(job.j0, job.nh);
        else helped.push(job);
      }
      for (const job of helped) {
        if (this.wait(job, seq)) this.copyBack(job, goMem, c, ldc, m);
        else inPlace(job.j0, job.nh);
      }
      this.stats.helped += helped.length;
    };
  }

  // claim takes job for the caller unless a helper has; true when taken.
  claim(job, seq) {
    const w = LAYOUT.slotBase + job.slot * LAYOUT.slotInts + LAYOUT.claim;
    return Atomics.compareExchange(this.ctrl, w, 2 * seq, 2 * seq + 1) === 2 * seq;
  }

  // stage copies each job's operands into the shared memory and fills its
  // slot (claim word last: from then on a helper may take it); it returns
  // the jobs, or null when they do not fit.
  stage(seq, mr, nr, cols, goMem, ap, bp, ldc, m, n, kd, bias, res, flags) {
    const rows = Math.ceil(m / mr) * mr;
    const jobs = [];
    let top = CTRL_BYTES;
    const take = (floats) => { const at = top; top = align16(top + 4 * floats); return at; };
    const sA = take(rows * kd);
    const sRowBias = flags & 1 ? take(rows) : 0;
    for (let j0 = cols; j0 < n; j0 += cols) {
      const nh = Math.min(cols, n - j0), wide = Math.ceil(nh / nr) * nr;
      jobs.push({ slot: jobs.length, j0, nh, wide, b: take(wide * kd), colBias: flags & 2 ? take(wide) : 0, res: res ? take(m * nh) : 0, c: take(m * nh) });
    }
    const pages = Math.ceil(top / 65536) - this.memory.buffer.byteLength / 65536;
    if (pages > 0) {
      try { this.memory.grow(pages); } catch { return null; }
    }
    const G = new Float32Array(goMem.buffer), S = new Float32Array(this.memory.buffer);
    const copy = (to, from, floats) => S.set(G.subarray(from >> 2, (from >> 2) + floats), to >> 2);
    copy(sA, ap, rows * kd);
    if (flags & 1) copy(sRowBias, bias, rows);
    for (const j of jobs) {
      copy(j.b, bp + 4 * j.j0 * kd, j.wide * kd); // panels [j0/NR, ...) of B
      if (flags & 2) copy(j.colBias, bias + 4 * j.j0, j.wide);
      if (res) for (let i = 0; i < m; i++) copy(j.res + 4 * i * j.nh, res + 4 * (i * ldc + j.j0), j.nh);
      const a = LAYOUT.slotBase + j.slot * LAYOUT.slotInts;
      const biasArg = flags & 1 ? sRowBias : flags & 2 ? j.colBias : 0;
      this.ctrl.set([sA, j.b, j.c, j.nh, m, j.nh, kd, biasArg, j.res, flags], a);
      this.ctrl[a + LAYOUT.failed] = 0;
      Atomics.store(this.ctrl, a + LAYOUT.claim, 2 * seq);
    }
    return jobs;
  }

  // wait waits for a job a helper claimed; false when it failed or stalled
  // (then the pool is closed and the caller computes the job itself).
  wait(job, seq) {
    const a = LAYOUT.slotBase + job.slot * LAYOUT.slotInts;
    const start = performance.now();
    let n = 0;
    for (let now = Atomics.load(this.ctrl, a + LAYOUT.done); this.alive && now !== seq; now = Atomics.load(this.ctrl, a + LAYOUT.done)) {
      if ((++n & 255) !== 0) continue;
      const waited = performance.now() - start;
      if (waited > this.stallMs) this.close();
      else if (this.canSleep && waited > SPIN_MS) Atomics.wait(this.ctrl, a + LAYOUT.done, now, 1);
    }
    if (this.alive && this.ctrl[a + LAYOUT.failed] === 0) return true;
    this.stats.stalls++;
    this.close();
    return false;
  }

  // copyBack copies a helper's columns of C into Go's memory.
  copyBack(job, goMem, c, ldc, m) {
    const G = new Float32Array(goMem.buffer), S = new Float32Array(this.memory.buffer);
    for (let i = 0; i < m; i++) {
      const from = (job.c >> 2) + i * job.nh;
      G.set(S.subarray(from, from + job.nh), (c >> 2) + i * ldc + job.j0);
    }
  }
}
