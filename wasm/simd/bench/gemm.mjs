// GFLOP/s of the SIMD128 GEMM kernel of ../kernels.wasm, standalone in Node
// (V8, the engine of Chromium): `node wasm/simd/bench/gemm.mjs [seconds]`.
// The module is instantiated over its own WebAssembly.Memory (in the browser
// it runs over Go's). Timing only; nothing here is a test.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const MR = Number(process.env.MR || 4), NR = 8; // must match kernels_gen.go
const wasmPath = process.env.KERNELS || fileURLToPath(new URL('../kernels.wasm', import.meta.url));
const seconds = Number(process.argv[2] || 0.5);

const memory = new WebAssembly.Memory({ initial: 2048 }); // 128 MiB
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), { env: { memory } });
const k = instance.exports;

let top = 64;
function alloc(n) { // n floats, 16-byte aligned; returns byte address
  const a = top;
  top += (n * 4 + 15) & ~15;
  if (top > memory.buffer.byteLength) throw new Error('bench memory too small');
  return a;
}
function fillRandom(addr, n) {
  const v = new Float32Array(memory.buffer, addr, n);
  for (let i = 0; i < n; i++) v[i] = Math.random() * 2 - 1;
}
const ceil = (n, m) => Math.ceil(n / m) * m;

// Milliseconds per call. This machine is shared, so by default the time is
// the process's CPU time (user+system), which leaves out the time other jobs
// held the core; WALL=1 reports wall-clock time instead.
const useWall = process.env.WALL === '1';
function time(fn) {
  for (let i = 0; i < 3; i++) fn(); // warm up (V8 tiers up to TurboFan)
  let reps = 0;
  const w0 = performance.now(), c0 = process.cpuUsage();
  let t;
  do { fn(); reps++; t = performance.now() - w0; } while (t < seconds * 1000);
  const c = process.cpuUsage(c0);
  return (useWall ? t : (c.user + c.system) / 1000) / reps;
}

function benchGemm(m, n, kd) {
  top = 64;
  const ap = alloc(ceil(m, MR) * kd), bp = alloc(ceil(n, NR) * kd), c = alloc(m * n);
  fillRandom(ap, ceil(m, MR) * kd); fillRandom(bp, ceil(n, NR) * kd);
  const ms = time(() => k.gemm(ap, bp, c, n, m, n, kd, 0, 0, 0));
  return { ms, gflops: 2 * m * n * kd / ms / 1e6 };
}

// A 3x3 conv, pad 1, stride 1, as the backend runs it: pad, im2col, GEMM.
function benchConv(ci, co, h, w) {
  top = 64;
  const hp = h + 2, wp = w + 2, kd = ci * 9, npix = h * w, npad = ceil(npix, NR);
  const x = alloc(ci * h * w), xp = alloc(ci * hp * wp), bp = alloc(npad * kd);
  const wa = alloc(ceil(co, MR) * kd), bias = alloc(ceil(co, MR)), out = alloc(co * npix);
  const koff = alloc(kd), pix = alloc(npad);
  fillRandom(x, ci * h * w); fillRandom(wa, ceil(co, MR) * kd); fillRandom(bias, ceil(co, MR));
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
}

function callOverhead() {
  const f = k.abi;
  const n = 2e6;
  for (let i = 0; i < 1e5; i++) f();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f();
  return (performance.now() - t0) / n * 1e6; // ns
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`kernels: ${wasmPath} (MR=${MR}, NR=${NR}); times are ${useWall ? 'wall-clock' : 'process CPU time'}`);
console.log(`node ${process.version}, V8 ${process.versions.v8}, ${os.cpus().length} cores: ${cpu}, load avg ${os.loadavg().map(v => v.toFixed(2)).join(' ')}`);
console.log('\nGEMM  M x N x K                  ms      GFLOP/s');
for (const [m, n, kd] of [[64, 1024, 576], [64, 1024, 288], [128, 256, 1152], [64, 256, 576], [64, 64, 576],
                          [64, 16, 576], [256, 256, 256], [512, 512, 512], [256, 256, 64], [256, 64, 256], [196, 16, 196]]) {
  const r = benchGemm(m, n, kd);
  console.log(`      ${String(m).padStart(4)} x ${String(n).padStart(4)} x ${String(kd).padStart(4)}   ${r.ms.toFixed(3).padStart(10)}  ${r.gflops.toFixed(1).padStart(8)}`);
}
console.log('\nconv3x3 Ci->Co HxW          pad ms  im2col ms   gemm ms  gemm GFLOP/s  conv GFLOP/s');
for (const [ci, co, h, w] of [[32, 32, 32, 32], [64, 64, 16, 16], [64, 64, 8, 8], [32, 32, 28, 28], [64, 64, 7, 7], [128, 128, 32, 32]]) {
  const r = benchConv(ci, co, h, w);
  console.log(`        ${String(ci).padStart(3)}->${String(co).padEnd(3)} ${String(h).padStart(2)}x${String(w).padEnd(2)}  ${r.tPad.toFixed(3).padStart(10)} ${r.tIm2col.toFixed(3).padStart(10)} ${r.tGemm.toFixed(3).padStart(9)} ${r.gemmGflops.toFixed(1).padStart(13)} ${r.convGflops.toFixed(1).padStart(13)}`);
}
console.log(`\nwasm call from JS (abi()): ${callOverhead().toFixed(1)} ns`);
