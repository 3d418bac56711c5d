// A GEMM helper that starts like simd_thread.js and then never serves a
// job (a worker the browser stopped scheduling): threads.test.mjs checks
// that the glue computes its columns itself.
const { parentPort } = require('node:worker_threads');
parentPort.once('message', () => parentPort.postMessage({ ready: true }));
