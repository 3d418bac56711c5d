// A GEMM helper that starts like simd_thread.js, claims the first job it
// can and never finishes it (a worker the browser stopped mid-job):
// threads.test.mjs checks that the glue computes that job itself.
const { parentPort } = require('node:worker_threads');
parentPort.postMessage({ ok: true });
parentPort.once('message', ({ ctrl: sab, layout }) => {
  const ctrl = new Int32Array(sab);
  parentPort.postMessage({ ok: true });
  const claim = layout.slotBase + layout.claim; // job 0's claim word
  for (;;) {
    const seq = Atomics.load(ctrl, layout.seq);
    if (seq > 0 && Atomics.compareExchange(ctrl, claim, 2 * seq, 2 * seq + 1) === 2 * seq) break;
  }
});
