// The f32x4 arithmetic ceiling of this engine and CPU (see bench/peak):
//   go run ./wasm/simd/bench/peak /tmp/peak.wasm
//   node --experimental-wasm-relaxed-simd wasm/simd/bench/peak.mjs /tmp/peak.wasm
// Best of 7 runs of process CPU time (the machine may be shared).
import { readFileSync } from 'node:fs';

const memory = new WebAssembly.Memory({ initial: 1 });
const { instance } = await WebAssembly.instantiate(readFileSync(process.argv[2]), { env: { memory } });
const k = instance.exports;
const n = 2e7;
const clock = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };
const best = (f) => {
  f(1e5);
  let b = Infinity;
  for (let r = 0; r < 7; r++) {
    const t0 = clock();
    f(n);
    b = Math.min(b, clock() - t0);
  }
  return b;
};
const flops = n * 24 * 8;
console.log(`f32x4.relaxed_madd, 12 independent chains in registers: ${(flops / best(k.peak_fma) / 1e6).toFixed(1)} GFLOP/s`);
