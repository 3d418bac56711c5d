// Runs a GOOS=js GOARCH=wasm binary (a `go test` binary) in Node with the
// SIMD kernels attached through simd_glue.js, the way a page does. Used by
// testdata/go_js_wasm_exec_simd: `go test -exec` passes the binary and its
// arguments. KERNELS overrides the kernels.wasm path.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import os from 'node:os';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
globalThis.require = require;
globalThis.fs = require('node:fs');
globalThis.path = path;
const goroot = process.env.GOROOT || execFileSync('go', ['env', 'GOROOT']).toString().trim();
require(path.join(goroot, 'lib', 'wasm', 'wasm_exec.js'));

// simd_glue.js is an ES module in a folder Node treats as CommonJS: import
// its source as a data: URL.
const glueSrc = readFileSync(path.join(here, '..', 'simd_glue.js'), 'utf8');
const { attachSimd } = await import('data:text/javascript;base64,' + Buffer.from(glueSrc).toString('base64'));

const [wasmPath, ...args] = process.argv.slice(2);
const go = new globalThis.Go();
go.argv = [wasmPath, ...args];
go.env = Object.assign({ TMPDIR: os.tmpdir() }, process.env);
go.exit = process.exit;

// KERNELS: one path, or several separated by ':' (tried in order, as a page
// passes ['kernels_relaxed.wasm', 'kernels.wasm']).
// Each has its shared-memory twin next to it (kernels_shared.wasm for
// kernels.wasm), so large GEMMs run on helper threads as on an isolated
// page; SIMD_THREADS sets how many (default: as a page picks, by cores).
const kernelPaths = (process.env.KERNELS || path.join(here, '..', 'kernels.wasm')).split(':');
const attached = await attachSimd(go, kernelPaths.map((p) => readFileSync(p)), {
  shared: kernelPaths.map((p) => readFileSync(p.replace(/\.wasm$/, '_shared.wasm'))),
  threads: process.env.SIMD_THREADS ? Number(process.env.SIMD_THREADS) : undefined,
  threadScript: pathToFileURL(path.join(here, '..', 'simd_thread.js')),
});
if (!attached.simd) console.error('simd_glue: kernels unavailable:', attached.error);
// Go's memory made shared, as the app's worker does, so the helpers work
// on Go's slices.
const goModule = readFileSync(wasmPath);
const { instance } = await attached.instantiate(goModule);
process.on('exit', (code) => {
  // SIMD_STATS=1: how many GEMMs ran split over helper threads.
  if (process.env.SIMD_STATS) console.error(`simd_glue: ${attached.stats?.splits ?? 0} GEMMs split over ${attached.threads ?? 1} threads`);
  if (code === 0 && !go.exited) { // deadlock: make Go report it
    go._pendingEvent = { id: 0 };
    go._resume();
  }
});
await go.run(instance);
