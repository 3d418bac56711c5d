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
//   await attachSimd(go, ['kernels_relaxed.wasm', 'kernels.wasm']);
//   const { instance } = await WebAssembly.instantiateStreaming(fetch('main.wasm'), go.importObject);
//   go.run(instance);
//
// A Go binary that links wasm/simd cannot be instantiated without the
// `simd` imports, so call attachSimd even where SIMD may be missing: when
// kernels.wasm cannot be compiled (a browser without WebAssembly SIMD) it
// installs stubs, the kernels' abi() reports 0, and simd.NewDenoiser returns
// an error, so the page can fall back to another backend.

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
 * Resolves to { simd: true, index } (which candidate) when one compiled,
 * { simd: false, error } when none did (Go then sees no kernels). Call it
 * before instantiating the Go module.
 */
export async function attachSimd(go, kernels) {
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

  await warmUp(module);

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
    return run(instance);
  };
  return { simd: true, index };
}

// warmUp runs the kernels' own warmup export on a throwaway instance until
// V8 has optimized them. V8 compiles wasm with a baseline compiler first and
// optimizes a function after it has run a while, in a background queue; once
// the Go module runs, its many functions fill that queue and the kernels
// could stay on baseline code (4x slower) for many sampler steps. Optimized
// code belongs to the compiled module, so the Go-memory instance gets it.
async function warmUp(module) {
  try {
    const memory = new WebAssembly.Memory({ initial: 5 }); // the warmup's 256 KiB scratch
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
