// Old against new: GFLOP/s of the GEMM of two kernel modules on the same
// shapes, interleaved in one process (round r times A then B, then B then
// A), so load from other jobs on a shared machine hits both alike; prints
// the median of ROUNDS rounds and new/old. Process CPU time.
//
//   node wasm/simd/bench/gemm_cmp.mjs OLD.wasm NEW.wasm [MR_OLD MR_NEW]
//
// SHAPES=MxNxK,... picks the shapes (default: those of the shipped UNets'
// convolutions), ROUNDS the rounds.
// (relaxed-SIMD modules need --experimental-wasm-relaxed-simd on Node 20).
import { readFileSync } from 'node:fs';

const [fa, fb] = process.argv.slice(2, 4);
const mrs = [Number(process.argv[4] || 4), Number(process.argv[5] || 4)];
const rounds = Number(process.env.ROUNDS || 7);
const NR = 8;
const clock = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };
const ceil = (n, m) => Math.ceil(n / m) * m;

async function load(file) {
  const memory = new WebAssembly.Memory({ initial: 2048 });
  const { instance } = await WebAssembly.instantiate(readFileSync(file), { env: { memory } });
  return { k: instance.exports, memory };
}
const mods = [await load(fa), await load(fb)];

function setup(mod, MR, m, n, kd) {
  let top = 64;
  const alloc = (len) => { const a = top; top += (len * 4 + 63) & ~63; return a; };
  const ap = alloc(ceil(m, MR) * kd), bp = alloc(ceil(n, NR) * kd), c = alloc(m * n);
  const f = new Float32Array(mod.memory.buffer);
  for (let i = 64 / 4; i < top / 4; i++) f[i] = Math.random() * 2 - 1;
  return () => mod.k.gemm(ap, bp, c, n, m, n, kd, 0, 0, 0);
}

function time(fn, ms) {
  let reps = 0;
  const t0 = clock(), w0 = performance.now();
  do { fn(); reps++; } while (performance.now() - w0 < ms);
  return (clock() - t0) / reps;
}

const shapes = (process.env.SHAPES || '64x1024x576,128x1024x1152,64x1024x1728,128x256x1152,64x196x576,32x784x288,64x49x576,160x16x1440,128x256x64,256x256x256')
  .split(',').map((s) => s.split('x').map(Number));
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
console.log(`A=${fa} (MR ${mrs[0]})\nB=${fb} (MR ${mrs[1]})\nmedian of ${rounds} interleaved rounds, process CPU time\n`);
console.log('M x N x K              A GFLOP/s   B GFLOP/s   B/A');
const ratios = [];
for (const [m, n, kd] of shapes) {
  const fns = mods.map((mod, i) => setup(mod, mrs[i], m, n, kd));
  for (const fn of fns) for (let i = 0; i < 5; i++) fn();
  const g = [[], []];
  const flop = 2 * m * n * kd;
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? [1, 0] : [0, 1];
    for (const i of order) g[i].push(flop / time(fns[i], 60) / 1e6);
  }
  const a = med(g[0]), b = med(g[1]);
  ratios.push(b / a);
  console.log(`${`${m}x${n}x${kd}`.padEnd(20)} ${a.toFixed(1).padStart(10)} ${b.toFixed(1).padStart(11)}   ${(b / a).toFixed(3)}`);
}
console.log(`\ngeometric mean B/A: ${Math.exp(ratios.reduce((s, r) => s + Math.log(r), 0) / ratios.length).toFixed(3)}`);
