// The GEMM/conv benchmark of the SIMD kernels, shared by gemm.mjs (Node) and
// chromium.mjs (headless Chromium). No imports: it runs in any JS engine.
//
// run({ wasm, MR, seconds, clock, log }) instantiates the kernel module over
// its own WebAssembly.Memory and logs a table. clock() returns milliseconds
// (wall or CPU time, as the caller chooses).
//
// With glue: { attachSimd, shared, threads, threadScript } the kernels are
// called the way a Go program calls them, through simd_glue.js over a
// shared memory (as shareGoMemory makes Go's), so GEMMs are split over
// `threads` threads (time them by the wall clock: CPU time adds the threads
// up).
export async function run({ wasm, MR = 4, seconds = 0.5, clock, log, glue }) {
  const memory = glue
    ? new WebAssembly.Memory({ initial: 2048, maximum: 2048, shared: true }) // 128 MiB
    : new WebAssembly.Memory({ initial: 2048 });
  if (!glue) {
    const { instance } = await WebAssembly.instantiate(wasm, { env: { memory } });
    return tables(instance.exports, memory, { MR, seconds, clock, log });
  }
  const go = { importObject: {} };
  let results;
  go.run = async () => { results = tables(go.importObject.simd, memory, { MR, seconds, clock, log }); };
  const attached = await glue.attachSimd(go, [wasm], { shared: glue.shared && [glue.shared], threads: glue.threads, threadScript: glue.threadScript });
  if (!attached.simd) throw new Error(`the glue could not attach the kernels: ${attached.error}`);
  await go.run({ exports: { mem: memory } });
  log(`(through simd_glue.js: ${attached.threads} thread(s); ${attached.stats.splits} GEMMs split)`);
  return results;
}

// tables runs the benchmark on kernels k over memory.
function tables(k, memory, { MR, seconds, clock, log }) {
  const NR = 8;

  let top = 64;
  const alloc = (n) => { // n floats, 16-byte aligned; returns the byte address
    const a = top;
    top += (n * 4 + 15) & ~15;
    if (top > memory.buffer.byteLength) throw new Error('bench memory too small');
    return a;
  };
  const fillRandom = (addr, n) => {
    const v = new Float32Array(memory.buffer, addr, n);
    for (let i = 0; i < n; i++) v[i] = Math.random() * 2 - 1;
  };
  const ceil = (n, m) => Math.ceil(n / m) * m;
  // ms per call, after warm-up (V8 tiers up to TurboFan): the best of five
  // rounds of seconds/5 each, so a round that shared the core with other
  // jobs does not count.
  const time = (fn) => {
    for (let i = 0; i < 3; i++) fn();
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      let reps = 0;
      const t0 = clock(), w0 = performance.now();
      do { fn(); reps++; } while (performance.now() - w0 < seconds * 200);
      best = Math.min(best, (clock() - t0) / reps);
    }
    return best;
  };

  const gemmShape = (m, n, kd) => {
    top = 64;
    const ap = alloc(ceil(m, MR) * kd), bp = alloc(ceil(n, NR) * kd), c = alloc(m * n);
    fillRandom(ap, ceil(m, MR) * kd);
    fillRandom(bp, ceil(n, NR) * kd);
    const ms = time(() => k.gemm(ap, bp, c, n, m, n, kd, 0, 0, 0));
    return { ms, gflops: 2 * m * n * kd / ms / 1e6 };
  };

  // A 3x3 conv, pad 1, stride 1, as the backend runs it: pad, im2col, GEMM.
  const conv = (ci, co, h, w) => {
    top = 64;
    const hp = h + 2, wp = w + 2, kd = ci * 9, npix = h * w, npad = ceil(npix, NR);
    const x = alloc(ci * h * w), xp = alloc(ci * hp * wp), bp = alloc(npad * kd);
    const wa = alloc(ceil(co, MR) * kd), bias = alloc(ceil(co, MR)), out = alloc(co * npix);
    const koff = alloc(kd), pix = alloc(npad);
    fillRandom(x, ci * h * w);
    fillRandom(wa, ceil(co, MR) * kd);
    fillRandom(bias, ceil(co, MR));
    const ko = new Int32Array(memory.buffer, koff, kd), po = new Int32Array(memory.buffer, pix, npad);
    for (let i = 0; i < ci; i++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++)
      ko[(i * 3 + ky) * 3 + kx] = 4 * ((i * hp + ky) * wp + kx);
    po.fill(0); // padding pixels: any valid offset
    for (let p = 0; p < npix; p++) po[p] = 4 * (Math.floor(p / w) * wp + (p % w));
    const flops = 2 * co * npix * kd;
    const tPad = time(() => k.pad(x, xp, ci, h, w, hp, wp, 1, 1));
    const tIm2col = time(() => k.im2col(xp, koff, pix, kd, npad, bp));
    const tGemm = time(() => k.gemm(wa, bp, out, npix, co, npix, kd, bias, 0, 1));
    const total = tPad + tIm2col + tGemm;
    return { tPad, tIm2col, tGemm, gemmGflops: flops / tGemm / 1e6, convGflops: flops / total / 1e6 };
  };

  const pad = (v, n) => String(v).padStart(n);
  log('GEMM  M x N x K                  ms      GFLOP/s');
  const results = {};
  for (const [m, n, kd] of [[64, 1024, 576], [64, 1024, 288], [128, 256, 1152], [64, 256, 576], [64, 64, 576],
    [64, 16, 576], [256, 256, 256], [512, 512, 512], [256, 256, 64], [256, 64, 256], [196, 16, 196],
    [128, 256, 2304], [160, 64, 2880]]) {
    const r = gemmShape(m, n, kd);
    results[`${m}x${n}x${kd}`] = r.gflops;
    log(`      ${pad(m, 4)} x ${pad(n, 4)} x ${pad(kd, 4)}   ${pad(r.ms.toFixed(3), 10)}  ${pad(r.gflops.toFixed(1), 8)}`);
  }
  log('\nconv3x3 Ci->Co HxW          pad ms  im2col ms   gemm ms  gemm GFLOP/s  conv GFLOP/s');
  for (const [ci, co, h, w] of [[32, 32, 32, 32], [64, 64, 16, 16], [64, 64, 8, 8], [32, 32, 28, 28], [64, 64, 7, 7], [128, 128, 32, 32]]) {
    const r = conv(ci, co, h, w);
    log(`        ${pad(ci, 3)}->${String(co).padEnd(3)} ${pad(h, 2)}x${String(w).padEnd(2)}  ${pad(r.tPad.toFixed(3), 10)} ${pad(r.tIm2col.toFixed(3), 10)} ${pad(r.tGemm.toFixed(3), 9)} ${pad(r.gemmGflops.toFixed(1), 13)} ${pad(r.convGflops.toFixed(1), 13)}`);
  }
  const n = 2e6, f = k.abi;
  for (let i = 0; i < 1e5; i++) f();
  const w0 = performance.now();
  for (let i = 0; i < n; i++) f();
  log(`\nwasm call from JS (abi()): ${((performance.now() - w0) / n * 1e6).toFixed(1)} ns (wall)`);
  return results;
}

