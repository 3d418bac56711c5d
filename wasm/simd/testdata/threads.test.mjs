// The glue's threaded GEMM (simd_glue.js GemmPool + simd_thread.js), in
// Node: `node --test wasm/simd/testdata/threads.test.mjs` (make test-simd
// runs it). A GEMM split over helper threads must give exactly the bits of
// the same kernel on one thread, for awkward shapes, every bias mode, a
// residual, strided C and batches; a dead helper must not change the
// result; and shareGoMemory must turn a Go binary's memory shared.
// KERNELS/SHARED pick the module pair (default: plain SIMD128). The stand-in
// for Go's memory is shared, as shareGoMemory makes Go's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const simdDir = path.join(here, '..');
const glueSrc = readFileSync(path.join(simdDir, 'simd_glue.js'), 'utf8');
const { attachSimd, shareGoMemory, compileGo } = await import('data:text/javascript;base64,' + Buffer.from(glueSrc).toString('base64'));
const kernels = readFileSync(process.env.KERNELS || path.join(simdDir, 'kernels.wasm'));
const shared = readFileSync(process.env.SHARED || path.join(simdDir, 'kernels_shared.wasm'));
const threadScript = pathToFileURL(path.join(simdDir, 'simd_thread.js'));

// A bump allocator over the stand-in Go memory (16-byte aligned, as
// Kernels.Alloc is), optionally misaligned by 4 bytes.
function arena(mem) {
  let top = 1024;
  return (floats, misalign = 0) => {
    const at = ((top + 15) & ~15) + 4 * misalign;
    top = at + 4 * floats + 64;
    if (top > mem.buffer.byteLength) mem.grow(Math.ceil((top - mem.buffer.byteLength) / 65536));
    return at;
  };
}

function fill(mem, at, n, seed) {
  const f = new Float32Array(mem.buffer, at, n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[i] = (s / 2 ** 32) * 2 - 1;
  }
}

// runCase computes one GEMM with the kernel trampolines k over memory mem
// and returns C (its m rows of n, from a C with row stride ldc).
function runCase(k, mem, { m, n, kd, ldc, mode, withRes, misalign }) {
  const alloc = arena(mem);
  const mr = k.gemm_mr(), nr = k.gemm_nr();
  const rows = Math.ceil(m / mr) * mr, wide = Math.ceil(n / nr) * nr;
  const a = alloc(m * kd), b = alloc(kd * n), ap = alloc(rows * kd), bp = alloc(wide * kd);
  fill(mem, a, m * kd, 1); fill(mem, b, kd * n, 2);
  k.pack_a(a, kd, m, kd, ap);
  k.pack_b(b, n, kd, n, bp);
  const bias = mode === 0 ? 0 : alloc(mode === 1 ? rows : wide);
  if (bias) fill(mem, bias, mode === 1 ? rows : wide, 3);
  const cLen = (m - 1) * ldc + n;
  const res = withRes ? alloc(cLen) : 0;
  if (res) fill(mem, res, cLen, 4);
  const c = alloc(cLen + 8, misalign);
  new Float32Array(mem.buffer, c, cLen + 8).fill(12345); // guards past C's rows
  k.gemm(ap, bp, c, ldc, m, n, kd, bias, res, mode);
  return Float32Array.from(new Float32Array(mem.buffer, c, cLen + 8));
}

// runBatch computes one gemm_batch whose items' C interleave row by row
// (as Winograd's do) and returns the whole C region.
function runBatch(k, mem, { count, m, n, kd }) {
  const alloc = arena(mem);
  const mr = k.gemm_mr(), nr = k.gemm_nr();
  const sa = Math.ceil(m / mr) * mr * kd + 3, sb = Math.ceil(n / nr) * nr * kd + 5, sc = n + 2, ldc = count * sc;
  const ap = alloc(count * sa), bp = alloc(count * sb);
  fill(mem, ap, count * sa, 5); fill(mem, bp, count * sb, 6);
  const cLen = (count - 1) * sc + (m - 1) * ldc + n;
  const c = alloc(cLen + 8);
  new Float32Array(mem.buffer, c, cLen + 8).fill(12345);
  k.gemm_batch(count, ap, sa, bp, sb, c, sc, ldc, m, n, kd);
  return Float32Array.from(new Float32Array(mem.buffer, c, cLen + 8));
}

// attachAndRun attaches kernels with the given thread count, runs cases
// and returns their outputs and the attach result.
async function attachAndRun(threads, cases, options = {}) {
  const go = { importObject: {} };
  let outputs;
  const mem = new WebAssembly.Memory({ initial: 512, maximum: 4096, shared: true });
  // Helpers start while the first GEMMs run (the caller does their jobs
  // meanwhile): with helpers, repeat the cases until one has taken part
  // (at most 5 s) and keep the last round's outputs.
  go.run = async () => {
    const t0 = performance.now();
    do outputs = cases.map((c) => (c.count ? runBatch : runCase)(go.importObject.simd, mem, c));
    while (threads > 1 && attached.stats.helped === 0 && performance.now() - t0 < 5000);
  };
  const attached = await attachSimd(go, [kernels], { shared: [shared], threads, threadScript, ...options });
  assert.ok(attached.simd, `kernels did not attach: ${attached.error}`);
  await go.run({ exports: { mem } });
  return { outputs, attached };
}

const cases = [
  { m: 64, n: 1024, kd: 576, ldc: 1024, mode: 1, withRes: false, misalign: 0 },
  { m: 61, n: 777, kd: 123, ldc: 800, mode: 1, withRes: true, misalign: 1 },
  { m: 33, n: 515, kd: 301, ldc: 515, mode: 2, withRes: false, misalign: 0 },
  { m: 128, n: 300, kd: 200, ldc: 301, mode: 0, withRes: true, misalign: 0 },
  { m: 7, n: 4099, kd: 97, ldc: 4100, mode: 2, withRes: true, misalign: 1 },
  { m: 16, n: 16, kd: 16, ldc: 16, mode: 1, withRes: false, misalign: 0 }, // too small to split
  // A wide GEMM that uses every helper, then a narrow one that leaves a
  // helper without columns: that helper must not rerun its old job (it
  // would write into the new A).
  { m: 8, n: 4096, kd: 64, ldc: 4096, mode: 1, withRes: false, misalign: 0 },
  { m: 128, n: 20, kd: 2048, ldc: 20, mode: 1, withRes: false, misalign: 0 },
  // gemm_batch, split by items (Winograd's 16 products, and an odd count).
  { count: 16, m: 64, n: 196, kd: 64 },
  { count: 7, m: 33, n: 61, kd: 150 },
  { count: 16, m: 8, n: 8, kd: 8 }, // too small to split
];
const splits = cases.filter((c) => (c.count || 1) * c.m * c.n * c.kd >= 2 ** 18).length; // SPLIT_MACS

test('a GEMM split over threads gives the bits of one thread', async () => {
  const one = await attachAndRun(1, cases);
  assert.equal(one.attached.threads, 1);
  for (const threads of [2, 3, 4]) {
    const many = await attachAndRun(threads, cases);
    assert.equal(many.attached.threads, threads, 'the pool did not start');
    assert.equal(many.attached.stats.splits % splits, 0, 'every large case should split, the small ones not');
    assert.ok(many.attached.stats.helped > 0, 'no helper ever took a job');
    cases.forEach((c, i) => {
      const want = one.outputs[i], got = many.outputs[i];
      for (let j = 0; j < want.length; j++) {
        if (Object.is(want[j], got[j])) continue;
        assert.fail(`${threads} threads, case ${JSON.stringify(c)}: element ${j} is ${got[j]}, one thread gives ${want[j]}`);
      }
    });
  }
});

test('one thread matches a plain JavaScript GEMM', async () => {
  // Guards the test above against a kernel that is wrong the same way on
  // every thread count.
  const c = { m: 9, n: 37, kd: 21, ldc: 40, mode: 1, withRes: true, misalign: 0 };
  const go = { importObject: {} };
  const mem = new WebAssembly.Memory({ initial: 512, maximum: 4096, shared: true });
  let got;
  go.run = async () => { got = runCase(go.importObject.simd, mem, c); };
  await attachSimd(go, [kernels], { shared: [shared], threads: 1 });
  await go.run({ exports: { mem } });
  // Rebuild the inputs the way runCase filled them.
  const scratch = new WebAssembly.Memory({ initial: 1 });
  const vals = (n, seed) => { fill(scratch, 0, n, seed); return Float32Array.from(new Float32Array(scratch.buffer, 0, n)); };
  const A = vals(c.m * c.kd, 1), B = vals(c.kd * c.n, 2), bias = vals(Math.ceil(c.m / 4) * 4, 3), R = vals((c.m - 1) * c.ldc + c.n, 4);
  for (let i = 0; i < c.m; i++) {
    for (let j = 0; j < c.n; j++) {
      let s = bias[i] + R[i * c.ldc + j];
      for (let t = 0; t < c.kd; t++) s += A[i * c.kd + t] * B[t * c.n + j];
      assert.ok(Math.abs(got[i * c.ldc + j] - s) < 1e-4, `C[${i},${j}] = ${got[i * c.ldc + j]}, want ${s}`);
    }
  }
  assert.equal(got[(c.m - 1) * c.ldc + c.n], 12345, 'the kernel wrote past C');
});

test('a helper that stops mid-job leaves the result unchanged', async () => {
  // stuck_thread.js claims a job and never finishes it: the caller must
  // give up on it after stallMs, compute its columns itself, and run later
  // GEMMs on one thread.
  const c = cases[1];
  const [want] = (await attachAndRun(1, [c])).outputs;
  const go = { importObject: {} };
  const mem = new WebAssembly.Memory({ initial: 512, maximum: 4096, shared: true });
  let calls = 0;
  go.run = async () => {
    // The helper may start late on a busy machine: call until it has
    // claimed a job and the caller has given up on it (or 5 s pass).
    const t0 = performance.now();
    do {
      assert.deepEqual(runCase(go.importObject.simd, mem, c), want, `call ${calls}`);
      calls++;
    } while (attached.stats.stalls === 0 && performance.now() - t0 < 5000);
    assert.deepEqual(runCase(go.importObject.simd, mem, c), want, 'after the pool ended');
  };
  const attached = await attachSimd(go, [kernels], {
    shared: [shared], threads: 2, threadScript: pathToFileURL(path.join(here, 'stuck_thread.js')), stallMs: 200,
  });
  await go.run({ exports: { mem } });
  assert.equal(attached.threads, 2);
  assert.equal(attached.stats.stalls, 1, `no split stalled in ${calls} calls`);
});

test('shareGoMemory declares a module\'s memory shared, keeping its size', async () => {
  // A module that defines memory 0 (min 2 pages, or min 2 max 9) and
  // exports it as "mem", as Go's linker writes it.
  const head = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const exportMem = [0x07, 0x07, 0x01, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00];
  for (const limits of [[0x00, 0x02], [0x01, 0x02, 0x09]]) {
    const bytes = Uint8Array.from([...head, 0x05, 1 + limits.length, 0x01, ...limits, ...exportMem]);
    const patched = shareGoMemory(bytes);
    assert.ok(patched, `limits ${limits}: not patched`);
    const { instance } = await WebAssembly.instantiate(patched);
    assert.ok(instance.exports.mem.buffer instanceof SharedArrayBuffer, 'memory not shared');
    assert.equal(instance.exports.mem.buffer.byteLength, 2 * 65536);
    instance.exports.mem.grow(3); // Go grows its memory as its heap grows
    assert.equal(instance.exports.mem.buffer.byteLength, 5 * 65536);
  }
  assert.equal(shareGoMemory(Uint8Array.from([...head])), null, 'a module without memory');
  assert.equal(shareGoMemory(readFileSync(path.join(simdDir, 'kernels.wasm'))), null, 'a module that imports its memory');
});

test('without cross-origin isolation: Go\'s module is left as it is and GEMMs run on one thread', async () => {
  const [want] = (await attachAndRun(1, [cases[0]])).outputs;
  globalThis.crossOriginIsolated = false; // what a page served without COOP/COEP sees
  try {
    const go = { importObject: {} };
    const mem = new WebAssembly.Memory({ initial: 512 }); // unshared, as Go's
    let out;
    go.run = async () => { out = runCase(go.importObject.simd, mem, cases[0]); };
    const attached = await attachSimd(go, [kernels], { shared: [shared], threads: 2, threadScript });
    // A module with an unshared memory exported as "mem", as Go's linker writes it.
    const goBytes = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x05, 0x03, 0x01, 0x00, 0x02, 0x07, 0x07, 0x01, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00]);
    const { instance } = await attached.instantiate(goBytes);
    assert.ok(!(instance.exports.mem.buffer instanceof SharedArrayBuffer), 'Go\'s memory was made shared');
    await go.run({ exports: { mem } });
    assert.equal(attached.threads, 1);
    assert.deepEqual(out, want);
  } finally {
    delete globalThis.crossOriginIsolated;
  }
});

test('compileGo compiles Go\'s module ahead, shared exactly where instantiate shares it', async () => {
  // A module with an unshared memory exported as "mem", as Go's linker writes it.
  const goBytes = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x05, 0x03, 0x01, 0x00, 0x02, 0x07, 0x07, 0x01, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00]);
  const isShared = (instance) => instance.exports.mem.buffer instanceof SharedArrayBuffer;
  // Threads possible (shared kernels given): the shared module, as compiled.
  let attached = await attachSimd({ importObject: {}, run: async () => {} }, [kernels], { shared: [shared], threads: 1 });
  let c = await compileGo(goBytes);
  assert.equal(c.shared, true);
  let r = await attached.instantiate(c);
  assert.equal(r.module, c.module, 'compiled again');
  assert.ok(isShared(r.instance), 'Go\'s memory is not shared');
  // No shared kernels (threads impossible after all): compiled again, unshared.
  attached = await attachSimd({ importObject: {}, run: async () => {} }, [kernels], { threads: 1 });
  r = await attached.instantiate(c);
  assert.ok(!isShared(r.instance), 'Go\'s memory is shared without shared kernels');
  // No kernels at all: unshared.
  attached = await attachSimd({ importObject: {}, run: async () => {} }, [Uint8Array.from([0, 1, 2])], { shared: [shared] });
  assert.equal(attached.simd, false);
  r = await attached.instantiate(c);
  assert.ok(!isShared(r.instance), 'Go\'s memory is shared without kernels');
  // Not cross-origin isolated: compiled unshared, and used as it is.
  globalThis.crossOriginIsolated = false;
  try {
    c = await compileGo(goBytes);
    assert.equal(c.shared, false);
    attached = await attachSimd({ importObject: {}, run: async () => {} }, [kernels], { shared: [shared], threads: 1 });
    r = await attached.instantiate(c);
    assert.equal(r.module, c.module, 'compiled again');
    assert.ok(!isShared(r.instance));
  } finally {
    delete globalThis.crossOriginIsolated;
  }
});
