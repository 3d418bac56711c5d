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
//   const simd = await attachSimd(go, ['kernels_relaxed.wasm', 'kernels.wasm'],
//     { shared: ['kernels_relaxed_shared.wasm', 'kernels_shared.wasm'] });
//   const bytes = await (await fetch('main.wasm')).arrayBuffer();
//   const { instance } = await simd.instantiate(bytes);
//   go.run(instance);
//
// (Or compile the Go module while attachSimd works: start
// compileGo(bytes) at once and pass what it resolves to to instantiate.)
//
// A Go binary that links wasm/simd cannot be instantiated without the
// `simd` imports, so call attachSimd even where SIMD may be missing: when
// kernels.wasm cannot be compiled (a browser without WebAssembly SIMD) it
// installs stubs, the kernels' abi() reports 0, and simd.NewDenoiser returns
// an error, so the page can fall back to another backend.
//
// Threads. One wasm thread tops out at the CPU's f32x4 rate (about 40
// GFLOP/s on the 2-core Xeon we measure on), so GEMMs are split over helper
// threads (simd_thread.js) that run the same kernels on the same memory.
// Go's wasm port has no threads and declares an unshared memory, so
// shareGoMemory rewrites the Go module's memory declaration to a shared one
// before it is instantiated. Go runs unchanged: it never learns that other
// threads exist, and they only touch its memory inside a GEMM call that Go
// is waiting for, each on its own columns. Every column is computed by the
// same code whatever the split, so results are bit-identical to one thread.
// Threads need SharedArrayBuffer: a cross-origin isolated page (tools/serve
// sends the COOP/COEP headers) or Node; elsewhere, or when the Go module's
// memory is not shared, everything runs on one thread.

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
 *            (kernels_relaxed_shared.wasm, kernels_shared.wasm): used when
 *            the Go module's memory is shared (see shareGoMemory); without
 *            them everything runs on one thread;
 *   threads: threads for large GEMMs, this one included (default: the
 *            CPU's cores, at most 4; 1 turns helpers off);
 *   threadScript: where simd_thread.js is (default: next to this file; pass
 *            it when this file was loaded from a data: URL);
 *   stallMs: how long a GEMM waits for a job a helper took before it
 *            stops using helpers and computes the job itself (default 10 s:
 *            a worker that died mid-job).
 *
 * Resolves to { simd: true, index, threads, stats, setThreads, instantiate }
 * when a module compiled (index: which candidate; threads: how many threads
 * GEMMs may use, settled when go.run sees whether Go's memory is shared;
 * stats counts GEMMs split, jobs a helper computed, and helper jobs given
 * up on), { simd: false, error, instantiate } when none did (Go then sees
 * no kernels). instantiate(bytes) instantiates the Go module with go's
 * imports, its memory made shared (shareGoMemory) where threads are
 * possible and that works, else as it is; it also takes compileGo's
 * result in place of the bytes. Call attachSimd before it.
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
    // (Go without kernels keeps an unshared memory.)
    return { simd: false, error, instantiate: (x) => instantiateGo(x, false, go.importObject) };
  }

  // Warm up the module Go will run (see warmUp): the shared twin where
  // there is one, which startHelpers warms.
  const helpers = await startHelpers(options, index);
  if (helpers === null) await warmUp(module, new WebAssembly.Memory({ initial: 5 }));
  const result = {
    simd: true, index, threads: 1, stats: { splits: 0, helped: 0, stalls: 0 }, setThreads: () => {},
    instantiate: (x) => instantiateGo(x, helpers !== null, go.importObject),
  };

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
    // Over a shared Go memory the kernels must be the shared twin (a
    // module's memory import says whether it is shared).
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    if (shared && helpers === null) throw new Error('simd: Go\'s memory is shared, and attachSimd was given no shared kernel module (options.shared)');
    const kernelInstance = await WebAssembly.instantiate(shared ? helpers.module : module, { env: { memory } });
    for (const [name, slot] of slots) slot.f = kernelInstance.exports[name];
    let pool = null;
    if (shared && helpers.workers.length > 0 && await helpers.attach(memory)) {
      pool = new GemmPool(helpers, options.stallMs ?? STALL_MS);
      slots.get('gemm').f = pool.gemm(kernelInstance.exports);
      slots.get('gemm_batch').f = pool.gemmBatch(kernelInstance.exports);
      result.threads = pool.threads;
      result.stats = pool.stats;
      // setThreads(n) caps the threads later GEMMs use (1: none of the
      // helpers; at most `threads`), for a setting or an A/B benchmark.
      result.setThreads = (n) => { pool.limit = Math.max(1, Math.min(pool.threads, Math.floor(n))); };
    } else {
      helpers?.close();
    }
    try {
      return await run(instance);
    } finally {
      pool?.close();
    }
  };
  return result;
}

// A Go module as compileGo leaves it: {module, shared, bytes}.
const isCompiled = (x) => typeof x === 'object' && x !== null && x.module instanceof WebAssembly.Module && 'bytes' in x;

// instantiateGo instantiates a Go module (bytes, or compileGo's result) with
// imports, its memory shared when `shared` (threads are possible) and the
// module allows it, else unshared. Resolves to {instance, module}.
async function instantiateGo(x, shared, imports) {
  const bytes = isCompiled(x) ? x.bytes : x;
  if (shared) {
    try {
      if (isCompiled(x) && x.shared) return { instance: await WebAssembly.instantiate(x.module, imports), module: x.module };
      if (!isCompiled(x)) {
        const sharedGo = shareGoMemory(bytes);
        if (sharedGo !== null) return await WebAssembly.instantiate(sharedGo, imports);
      }
    } catch {
      // e.g. no room for a 4 GiB shared memory (a 32-bit browser): one thread
    }
  }
  if (isCompiled(x) && !x.shared) return { instance: await WebAssembly.instantiate(x.module, imports), module: x.module };
  return WebAssembly.instantiate(bytes, imports);
}

/**
 * compileGo compiles a Go module (bytes) the way attachSimd's instantiate
 * will want it where threads are possible (shareGoMemory: its memory
 * shared; unshared elsewhere, or where the shared one does not compile),
 * so that a page can compile it while attachSimd is still at work (the
 * kernels' compilation and warm-up, the helper threads' start). Resolves to
 * {module, shared, bytes}, for instantiate in place of the bytes, which
 * compiles the module again only where the guess was wrong (threads turned
 * out impossible: no shared kernel module).
 */
export async function compileGo(bytes) {
  // (Unchecked patch: a bad one fails to compile, and the original is compiled.)
  const patched = sharedPossible() ? withSharedMemory(new Uint8Array(bytes), false) : null;
  if (patched !== null) {
    try {
      const module = await WebAssembly.compile(patched);
      if (!isNode) allowSharedViews();
      return { module, shared: true, bytes };
    } catch {
      // compiled unshared below
    }
  }
  return { module: await WebAssembly.compile(bytes), shared: false, bytes };
}

const sharedPossible = () => typeof SharedArrayBuffer !== 'undefined' && globalThis.crossOriginIsolated !== false;

/**
 * shareGoMemory returns a copy of a Go wasm module (bytes) whose memory is
 * declared shared (maximum 4 GiB), so that attachSimd's helper threads can
 * work on Go's slices; null where threads are impossible (no
 * SharedArrayBuffer: the page is not cross-origin isolated) or the module
 * is not the expected shape (then instantiate the original). In a browser
 * it also lets TextDecoder.decode and crypto.getRandomValues accept views of
 * shared memory, by copying through an unshared buffer: browsers refuse
 * them, and Go's wasm_exec.js passes them views of Go's memory (Node
 * accepts them as they are).
 */
export function shareGoMemory(bytes) {
  if (!sharedPossible()) return null;
  const patched = withSharedMemory(new Uint8Array(bytes), true);
  if (patched !== null && !isNode) allowSharedViews();
  return patched;
}

// withSharedMemory rewrites the memory section of a wasm module that defines
// exactly one memory (the WebAssembly binary format, §5.5.8 and §5.3.5):
// limits flag 0x03 (shared, with a maximum), the same minimum, a maximum of
// 65536 pages. null when the module is another shape, or (check) when the
// result does not validate.
function withSharedMemory(b, check) {
  const leb = (v) => { const out = []; do { let x = v & 0x7f; v >>>= 7; if (v) x |= 0x80; out.push(x); } while (v); return out; };
  const read = (at) => { let v = 0, shift = 0, x; do { x = b[at++]; v |= (x & 0x7f) << shift; shift += 7; } while (x & 0x80); return [v >>> 0, at]; };
  if (b.length < 8 || b[0] !== 0 || b[1] !== 0x61 || b[2] !== 0x73 || b[3] !== 0x6d) return null;
  for (let at = 8; at < b.length;) {
    const id = b[at];
    const [size, body] = read(at + 1);
    if (id === 5) {
      const [count, lim] = read(body);
      if (count !== 1 || (b[lim] !== 0x00 && b[lim] !== 0x01)) return null;
      const [min, after] = read(lim + 1);
      const end = b[lim] === 0x01 ? read(after)[1] : after;
      if (end !== body + size || min > 65536) return null;
      const payload = [...leb(1), 0x03, ...leb(min), ...leb(65536)];
      const head = [5, ...leb(payload.length), ...payload];
      const out = new Uint8Array(at + head.length + (b.length - end));
      out.set(b.subarray(0, at));
      out.set(head, at);
      out.set(b.subarray(end), at + head.length);
      return !check || WebAssembly.validate(out) ? out : null;
    }
    at = body + size;
  }
  return null;
}

// allowSharedViews wraps the two Web APIs that refuse views of shared
// memory and that Go's wasm_exec.js calls with views of Go's memory.
let sharedViewsAllowed = false;
function allowSharedViews() {
  if (sharedViewsAllowed) return;
  sharedViewsAllowed = true;
  const isShared = (v) => ArrayBuffer.isView(v) && v.buffer instanceof SharedArrayBuffer;
  const decode = TextDecoder.prototype.decode;
  TextDecoder.prototype.decode = function (input, opts) {
    if (isShared(input)) input = new Uint8Array(input.buffer, input.byteOffset, input.byteLength).slice();
    return decode.call(this, input, opts);
  };
  const random = Crypto.prototype.getRandomValues;
  Crypto.prototype.getRandomValues = function (view) {
    if (!isShared(view)) return random.call(this, view);
    const tmp = new view.constructor(view.length);
    random.call(this, tmp);
    view.set(tmp);
    return view;
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

// The control block the caller and its helpers share (a SharedArrayBuffer
// of its own), as int32 words: the job sequence number, the quit flag, the
// number of jobs of this sequence number, then one slot per job: which
// kernel (0 gemm, 1 gemm_batch), its arguments (byte addresses in Go's
// memory), the sequence number of the job's last completion, a failure
// flag, and its claim word (2·seq while job seq waits, 2·seq+1 once a
// thread took it, so a late helper can never take a job of another GEMM).
const LAYOUT = { seq: 0, quit: 1, jobs: 2, slotBase: 16, slotInts: 16, kind: 0, args: 1, done: 12, failed: 13, claim: 14, ints: 1024 };
const MAX_JOBS = (LAYOUT.ints - LAYOUT.slotBase) / LAYOUT.slotInts; // 63
const MAX_THREADS = 8;
// A split GEMM has CHUNKS_PER_THREAD pieces per thread: the caller computes
// the first, and every thread claims the others one at a time. So a helper
// that the OS runs late (a busy machine) costs little: the caller takes the
// pieces nobody has claimed yet.
const CHUNKS_PER_THREAD = 2;
// A GEMM is split only when it has at least SPLIT_MACS multiply-adds (about
// 7 µs on one thread): below that, waking a helper costs more than it saves.
const SPLIT_MACS = 1 << 18;
// How long helpers spin for the next job before they sleep, and how long
// the caller waits for a job a helper claimed before it stops using helpers
// and computes the job itself (a worker that died mid-job).
const SPIN_MS = 1;
const STALL_MS = 10000; // options.stallMs

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

async function defaultThreads() {
  const cores = isNode ? (await import('node:os')).availableParallelism() : (globalThis.navigator?.hardwareConcurrency || 1);
  return Math.min(4, cores);
}

// startHelpers compiles the shared twin of candidate `index` (the kernels
// for a shared Go memory) and starts the helper threads options ask for
// (they get Go's memory from GemmPool); null without a twin or
// SharedArrayBuffer. Helpers that fail to start are left out: threads only
// save time.
async function startHelpers(options, index) {
  const twin = options.shared?.[index];
  if (twin === undefined || typeof SharedArrayBuffer === 'undefined' || globalThis.crossOriginIsolated === false) return null;
  let module;
  try {
    module = await compileKernels(twin);
  } catch {
    return null; // no shared twin here: Go keeps an unshared memory
  }
  await warmUp(module, new WebAssembly.Memory({ initial: 5, maximum: 5, shared: true }));
  const threads = Math.min(MAX_THREADS, Math.floor(options.threads ?? await defaultThreads()));
  const workers = [];
  const close = () => { for (const w of workers.splice(0)) w.terminate(); };
  const sab = new SharedArrayBuffer(4 * LAYOUT.ints); // the control block
  // Each helper answers its first message once it has the kernels: wait for
  // all (a browser delivers a worker's messages only while its creator's
  // event loop turns, which Go's does not in a long GEMM). false, and no
  // helpers, when one fails or takes more than 10 s.
  const answers = () => new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 10000);
    Promise.all(workers.map((w) => w.next())).then((msgs) => { clearTimeout(timer); resolve(msgs); });
  });
  const ok = (msgs) => msgs !== null && msgs.every((m) => m?.ok);
  const attach = async (memory) => {
    const answered = answers();
    for (const w of workers) w.post({ module, memory, ctrl: sab, layout: { ...LAYOUT, spinMs: SPIN_MS } });
    if (ok(await answered)) return true;
    close();
    return false;
  };
  try {
    const script = options.threadScript ?? new URL('simd_thread.js', import.meta.url);
    for (let i = 1; i < threads; i++) workers.push(await newWorker(script));
    if (!ok(await answers())) close(); // { ok: true } once each has started
  } catch {
    close();
  }
  return { module, workers, ctrl: sab, attach, close };
}

// newWorker starts simd_thread.js as a browser Worker or a Node
// worker_threads Worker behind one small interface; next() resolves to its
// next message ({ error } when it fails).
async function newWorker(script) {
  const queue = [];
  let waiting = null;
  const deliver = (m) => { if (waiting) { const r = waiting; waiting = null; r(m); } else queue.push(m); };
  const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => { waiting = r; }));
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(script instanceof URL || !/^[a-z]+:/i.test(script) ? script : new URL(script));
    w.unref(); // helpers never keep a Node process alive
    w.on('message', deliver);
    w.on('error', (e) => deliver({ error: String(e) }));
    return { post: (m) => w.postMessage(m), terminate: () => w.terminate(), next };
  }
  const w = new Worker(script);
  w.onmessage = (e) => deliver(e.data);
  w.onerror = (e) => deliver({ error: e.message || 'worker error' });
  return { post: (m) => w.postMessage(m), terminate: () => w.terminate(), next };
}

// GemmPool splits GEMMs between the calling thread and its helpers, which
// run the same kernels over the same (shared) Go memory: a gemm by columns
// (B is packed in panels of NR columns, each k·NR floats, so a range that
// starts on a panel boundary is a plain offset), a gemm_batch by items.
// The caller computes the first piece; every other piece is a job in the
// control block that any thread claims by compare-and-swap, the caller
// included, so the caller does whatever no helper has taken yet (a helper
// still starting, or one the OS runs late).
class GemmPool {
  constructor(helpers, stallMs) {
    this.stallMs = stallMs;
    this.workers = helpers.workers;
    this.threads = this.workers.length + 1;
    this.limit = this.threads; // setThreads
    this.ctrl = new Int32Array(helpers.ctrl);
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

  // pieces is how many pieces to cut `units` (panels or items) into, or 0
  // when the work should stay on this thread.
  pieces(units, macs) {
    if (!this.alive || this.limit < 2 || macs < SPLIT_MACS) return 0;
    const n = Math.min(this.limit * CHUNKS_PER_THREAD, units, MAX_JOBS + 1);
    return n < 2 ? 0 : n;
  }

  // gemm returns the trampoline target for the kernel `gemm` of the Go
  // instance's kernel exports k (same arguments as the kernel).
  gemm(k) {
    const nr = k.gemm_nr();
    return (ap, bp, c, ldc, m, n, kd, bias, res, flags) => {
      const pieces = this.pieces(Math.ceil(n / nr), m * n * kd);
      if (pieces === 0) return k.gemm(ap, bp, c, ldc, m, n, kd, bias, res, flags);
      const cols = Math.ceil(Math.ceil(n / nr) / pieces) * nr; // columns per piece, whole panels
      // Columns [j0, j0+cols): the same call on offset operands.
      const piece = (j0) => [ap, bp + 4 * j0 * kd, c + 4 * j0, ldc, m, Math.min(cols, n - j0), kd,
        flags & 2 ? bias + 4 * j0 : bias, res ? res + 4 * j0 : 0, flags];
      const jobs = [];
      for (let j0 = cols; j0 < n; j0 += cols) jobs.push(piece(j0));
      this.run(0, k.gemm, piece(0), jobs);
    };
  }

  // gemmBatch is gemm's counterpart for the kernel `gemm_batch`: pieces
  // are runs of whole items.
  gemmBatch(k) {
    return (count, ap, sa, bp, sb, c, sc, ldc, m, n, kd) => {
      const pieces = this.pieces(count, count * m * n * kd);
      if (pieces === 0) return k.gemm_batch(count, ap, sa, bp, sb, c, sc, ldc, m, n, kd);
      const per = Math.ceil(count / pieces);
      const piece = (i0) => [Math.min(per, count - i0), ap + 4 * i0 * sa, sa, bp + 4 * i0 * sb, sb, c + 4 * i0 * sc, sc, ldc, m, n, kd];
      const jobs = [];
      for (let i0 = per; i0 < count; i0 += per) jobs.push(piece(i0));
      this.run(1, k.gemm_batch, piece(0), jobs);
    };
  }

  // run publishes jobs (argument lists for kernel number `kind`), computes
  // first, then every job no helper has claimed, and waits for the rest.
  run(kind, kernel, first, jobs) {
    const seq = Atomics.load(this.ctrl, LAYOUT.seq) + 1;
    this.stats.splits++;
    jobs.forEach((args, slot) => {
      const a = LAYOUT.slotBase + slot * LAYOUT.slotInts;
      this.ctrl[a + LAYOUT.kind] = kind;
      this.ctrl.set(args, a + LAYOUT.args);
      this.ctrl[a + LAYOUT.failed] = 0;
      this.ctrl[a + LAYOUT.claim] = 2 * seq;
    });
    this.ctrl[LAYOUT.jobs] = jobs.length;
    Atomics.store(this.ctrl, LAYOUT.seq, seq); // publishes the slots
    Atomics.notify(this.ctrl, LAYOUT.seq);
    kernel(...first);
    const helped = [];
    jobs.forEach((args, slot) => {
      const w = LAYOUT.slotBase + slot * LAYOUT.slotInts + LAYOUT.claim;
      if (Atomics.compareExchange(this.ctrl, w, 2 * seq, 2 * seq + 1) === 2 * seq) kernel(...args);
      else helped.push(slot);
    });
    for (const slot of helped) {
      if (!this.wait(slot, seq)) kernel(...jobs[slot]);
    }
    this.stats.helped += helped.length;
  }

  // wait waits for a job a helper claimed; false when it failed or stalled
  // (then the pool is closed and the caller computes the job itself).
  wait(slot, seq) {
    const a = LAYOUT.slotBase + slot * LAYOUT.slotInts;
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
