// GFLOP/s of the SIMD128 GEMM kernel of ../kernels.wasm in Node (V8, the
// engine of Chromium): `node wasm/simd/bench/gemm.mjs [seconds]`. KERNELS
// picks another module (e.g. ../kernels_relaxed.wasm, with
// --experimental-wasm-relaxed-simd on Node 20), MR its tile height. The
// module runs over its own WebAssembly.Memory (in the browser it runs over
// Go's). Timing only; nothing here is a test.
//
// This machine is shared, so times are the process's CPU time by default
// (leaving out the time other jobs held the core); WALL=1 reports wall time.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { run } from './gemm_core.js';

const MR = Number(process.env.MR || 4); // must match kernels_gen.go
const wasmPath = process.env.KERNELS || fileURLToPath(new URL('../kernels.wasm', import.meta.url));
const useWall = process.env.WALL === '1';
const clock = useWall ? () => performance.now() : () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };

console.log(`kernels: ${wasmPath} (MR=${MR}); times are ${useWall ? 'wall-clock' : 'process CPU time'}`);
console.log(`node ${process.version}, V8 ${process.versions.v8}, ${os.cpus().length} cores: ${os.cpus()[0]?.model ?? '?'}, load avg ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}\n`);
await run({ wasm: readFileSync(wasmPath), MR, seconds: Number(process.argv[2] || 0.5), clock, log: console.log });
