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
    if (pool !== null) {
      slots.get('gemm').f = pool.gemm(kernelInstance.exports, memory);
      slots.get('gemm_batch').f = pool.gemmBatch(kernelInstance.exports, memory);
    }
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
// words: the job sequence number, the quit flag, the number of jobs of this
// sequence number and the last sequence number whose jobs are all
// published (helpers stop looking for more then), then one slot per job:
// which kernel (0 gemm, 1 gemm_batch), its arguments (byte addresses in the
// shared memory), the sequence number of the job's last completion, a
// failure flag, and its claim word (2·seq while job seq waits, 2·seq+1
// once a thread took it).
const LAYOUT = { seq: 0, quit: 1, jobs: 2, staged: 3, slotBase: 16, slotInts: 16, kind: 0, args: 1, done: 12, failed: 13, claim: 14, ints: 1024 };
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

// GemmPool splits large GEMMs between the calling thread and its helpers:
// a gemm by columns, a gemm_batch by items. B is packed in panels of NR
// columns (each k·NR floats, contiguous), so a column range that starts on a
// panel boundary is one contiguous piece of B. The caller computes the first
// range in Go's memory itself; every other range is a job with copies of its
// operands (A, its piece of B, bias and residual) and a C of its own in the
// shared memory. Threads claim jobs by compare-and-swap; a job the caller
// claims it computes in Go's memory (its copies go unused), a job a helper
// claims the caller copies back.
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

  // chunks is how many pieces to cut units (panels or items) into, or 0
  // when the work should stay on this thread.
  chunks(units, macs) {
    if (!this.alive || this.limit < 2 || macs < SPLIT_MACS) return 0;
    const n = Math.min(this.limit * CHUNKS_PER_THREAD, units, MAX_JOBS + 1);
    return n < 2 ? 0 : n;
  }

  // gemm returns the trampoline target for the kernel `gemm` of the Go
  // instance's kernel exports k over Go's memory goMem (same arguments as
  // the kernel: byte addresses into Go's memory).
  gemm(k, goMem) {
    const mr = k.gemm_mr(), nr = k.gemm_nr();
    return (ap, bp, c, ldc, m, n, kd, bias, res, flags) => {
      const chunks = this.chunks(Math.ceil(n / nr), m * n * kd);
      // Columns [j0, j0+nh) in place, from Go's memory.
      const inPlace = (j0, nh) => k.gemm(ap, bp + 4 * j0 * kd, c + 4 * j0, ldc, m, nh, kd,
        flags & 2 ? bias + 4 * j0 : bias, res ? res + 4 * j0 : 0, flags);
      if (chunks === 0) return inPlace(0, n);
      const cols = Math.ceil(Math.ceil(n / nr) / chunks) * nr; // columns per chunk, whole panels
      const rows = Math.ceil(m / mr) * mr;
      const ranges = [];
      for (let j0 = cols; j0 < n; j0 += cols) ranges.push({ j0, nh: Math.min(cols, n - j0) });
      const wide = (nh) => Math.ceil(nh / nr) * nr;
      const st = this.stager(goMem);
      if (!st.reserve(rows * kd + rows + ranges.reduce((t, r) => t + 16 + // + alignment
        wide(r.nh) * (kd + 1) + (res ? 2 : 1) * m * r.nh, 0))) return inPlace(0, n);
      this.begin(st.seq, ranges.length);
      const sA = st.copy(ap, rows * kd);
      const sRowBias = flags & 1 ? st.copy(bias, rows) : 0;
      const jobs = ranges.map((r, slot) => {
        const sB = st.copy(bp + 4 * r.j0 * kd, wide(r.nh) * kd); // panels [j0/NR, ...) of B
        const sColBias = flags & 2 ? st.copy(bias + 4 * r.j0, wide(r.nh)) : 0;
        const sRes = res ? st.copyRows(res + 4 * r.j0, ldc, m, r.nh) : 0;
        const sC = st.take(m * r.nh);
        this.publish(slot, 0, [sA, sB, sC, r.nh, m, r.nh, kd, flags & 1 ? sRowBias : sColBias, sRes, flags], st.seq);
        return { slot, ...r, sC };
      });
      this.finish(st.seq, jobs, () => inPlace(0, cols), (j) => inPlace(j.j0, j.nh),
        (j) => st.copyBack(j.sC, j.nh, c + 4 * j.j0, ldc, m));
    };
  }

  // gemmBatch is gemm's counterpart for the kernel `gemm_batch`: whole
  // items go to jobs.
  gemmBatch(k, goMem) {
    const mr = k.gemm_mr(), nr = k.gemm_nr();
    return (count, ap, sa, bp, sb, c, sc, ldc, m, n, kd) => {
      const chunks = this.chunks(count, count * m * n * kd);
      // Items [i0, i0+cnt) in place, from Go's memory.
      const inPlace = (i0, cnt) => k.gemm_batch(cnt, ap + 4 * i0 * sa, sa, bp + 4 * i0 * sb, sb, c + 4 * i0 * sc, sc, ldc, m, n, kd);
      if (chunks === 0) return inPlace(0, count);
      const per = Math.ceil(count / chunks);
      const aLen = Math.ceil(m / mr) * mr * kd, bLen = Math.ceil(n / nr) * nr * kd;
      const ranges = [];
      for (let i0 = per; i0 < count; i0 += per) ranges.push({ i0, cnt: Math.min(per, count - i0) });
      const st = this.stager(goMem);
      if (!st.reserve(ranges.reduce((t, r) => t + r.cnt * (aLen + bLen + m * n + 48), 0))) return inPlace(0, count);
      this.begin(st.seq, ranges.length);
      const jobs = ranges.map((r, slot) => {
        const sA = st.copyItems(ap, sa, r.i0, r.cnt, aLen);
        const sB = st.copyItems(bp, sb, r.i0, r.cnt, bLen);
        const sC = st.take(r.cnt * m * n); // item stride m·n, row stride n
        this.publish(slot, 1, [r.cnt, sA, aLen, sB, bLen, sC, m * n, n, m, n, kd], st.seq);
        return { slot, ...r, sC };
      });
      this.finish(st.seq, jobs, () => inPlace(0, per), (j) => inPlace(j.i0, j.cnt),
        (j) => { for (let i = 0; i < j.cnt; i++) st.copyBack(j.sC + 4 * i * m * n, n, c + 4 * (j.i0 + i) * sc, ldc, m); });
    };
  }

  // stager returns the copying helpers for one split call: reserve grows
  // the shared memory for `floats` (false when it cannot), take hands out
  // 16-byte aligned space, the copies move Go memory into it (returning
  // where) and copyBack moves an m×nh block of C back into Go's memory.
  stager(goMem) {
    const pool = this;
    let top = CTRL_BYTES, G = null, S = null;
    const take = (floats) => { const at = top; top = align16(top + 4 * floats); return at; };
    return {
      seq: Atomics.load(pool.ctrl, LAYOUT.seq) + 1,
      reserve(floats) {
        const pages = Math.ceil((CTRL_BYTES + 4 * floats) / 65536) - pool.memory.buffer.byteLength / 65536;
        if (pages > 0) {
          try { pool.memory.grow(pages); } catch { return false; }
        }
        G = new Float32Array(goMem.buffer);
        S = new Float32Array(pool.memory.buffer);
        return true;
      },
      take,
      copy(from, floats) {
        const to = take(floats);
        S.set(G.subarray(from >> 2, (from >> 2) + floats), to >> 2);
        return to;
      },
      copyRows(from, ld, rows, n) { // rows of n floats ld apart, packed
        const to = take(rows * n);
        for (let i = 0; i < rows; i++) S.set(G.subarray((from >> 2) + i * ld, (from >> 2) + i * ld + n), (to >> 2) + i * n);
        return to;
      },
      copyItems(from, stride, i0, cnt, len) { // items i0.. of len floats, stride apart, packed
        const to = take(cnt * len);
        for (let i = 0; i < cnt; i++) {
          const f = (from >> 2) + (i0 + i) * stride;
          S.set(G.subarray(f, f + len), (to >> 2) + i * len);
        }
        return to;
      },
      copyBack(sC, nh, c, ldc, m) {
        for (let i = 0; i < m; i++) G.set(S.subarray((sC >> 2) + i * nh, (sC >> 2) + (i + 1) * nh), (c >> 2) + i * ldc);
      },
    };
  }

  // publish fills a job's slot, claim word last: from then on a helper may
  // take it.
  publish(slot, kind, args, seq) {
    const a = LAYOUT.slotBase + slot * LAYOUT.slotInts;
    this.ctrl[a + LAYOUT.kind] = kind;
    this.ctrl.set(args, a + LAYOUT.args);
    this.ctrl[a + LAYOUT.failed] = 0;
    Atomics.store(this.ctrl, a + LAYOUT.claim, 2 * seq);
  }

  // begin wakes the helpers for the jobs of seq before they are staged:
  // each job can be taken as soon as it is published, while the caller
  // copies the next one's operands.
  begin(seq, jobs) {
    this.stats.splits++;
    this.ctrl[LAYOUT.jobs] = jobs;
    Atomics.store(this.ctrl, LAYOUT.seq, seq);
    Atomics.notify(this.ctrl, LAYOUT.seq);
  }

  // finish marks every job of seq published, computes `first` in place,
  // then computes in place every job no helper has claimed, waits for the
  // others and copies them back.
  finish(seq, jobs, first, inPlace, copyBack) {
    Atomics.store(this.ctrl, LAYOUT.staged, seq);
    first();
    const helped = [];
    for (const job of jobs) {
      const w = LAYOUT.slotBase + job.slot * LAYOUT.slotInts + LAYOUT.claim;
      if (Atomics.compareExchange(this.ctrl, w, 2 * seq, 2 * seq + 1) === 2 * seq) inPlace(job);
      else helped.push(job);
    }
    for (const job of helped) {
      if (this.wait(job, seq)) copyBack(job);
      else inPlace(job);
    }
    this.stats.helped += helped.length;
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
}
