// simd_thread.js: one GEMM helper thread of simd_glue.js (a dedicated Web
// Worker in a browser, a worker_threads Worker in Node; a classic script, so
// it runs in both).
//
// The glue posts it { module, memory, ctrl, layout }: `module` is the kernel
// module's shared-memory twin (kernels_shared.wasm or
// kernels_relaxed_shared.wasm, the one the Go instance runs), `memory` Go's
// own memory (shared: see shareGoMemory), `ctrl` the control block (see
// GemmPool in simd_glue.js). The thread instantiates the module over Go's
// memory and then serves jobs: it waits for the sequence word to change,
// claims that sequence number's jobs one at a time by compare-and-swap, runs
// each job's kernel (gemm or gemm_batch) on its arguments, which point into
// Go's slices, and stores the sequence number into the job's done word. It
// posts one message, when it starts: a job costs a few atomic operations.
(function helper() {
  const nodePort = typeof self === 'undefined' ? require('node:worker_threads').parentPort : null;
  // The glue waits for these answers before Go starts (see startHelpers).
  const post = (m) => (nodePort ?? self).postMessage(m);
  post({ ok: true });
  const onFirstMessage = (f) => {
    if (nodePort) nodePort.once('message', f);
    else self.onmessage = (e) => { self.onmessage = null; f(e.data); };
  };

  onFirstMessage(({ module, memory, ctrl: sab, layout }) => {
    const ctrl = new Int32Array(sab);
    const { seq: SEQ, quit: QUIT, jobs: JOBS, slotBase, slotInts, kind: KIND, args: ARGS, done: DONE, failed: FAILED, claim: CLAIM, spinMs } = layout;
    let kernels;
    try {
      const { gemm, gemm_batch: gemmBatch } = new WebAssembly.Instance(module, { env: { memory } }).exports;
      kernels = [gemm, gemmBatch]; // by a slot's kind word
    } catch (e) {
      post({ error: String(e) });
      return;
    }

    // Read the sequence number before answering: the first job may come
    // the moment the glue has heard from every helper.
    let seen = Atomics.load(ctrl, SEQ);
    post({ ok: true });
    for (;;) {
      // Spin a little before sleeping: during a sampler run the next GEMM
      // usually comes within microseconds, and waking a sleeping thread
      // costs tens of them.
      const until = performance.now() + spinMs;
      let n = 0;
      while (Atomics.load(ctrl, SEQ) === seen) {
        if ((++n & 1023) === 0 && performance.now() > until) Atomics.wait(ctrl, SEQ, seen);
      }
      seen = Atomics.load(ctrl, SEQ);
      if (Atomics.load(ctrl, QUIT) !== 0) return;
      // Claim words hold 2·seq while a job of this sequence number waits: a
      // claim can never take a job of another GEMM.
      const jobs = ctrl[JOBS];
      for (let j = 0; j < jobs; j++) {
        const a = slotBase + j * slotInts;
        if (Atomics.compareExchange(ctrl, a + CLAIM, 2 * seen, 2 * seen + 1) !== 2 * seen) continue;
        try {
          const x = a + ARGS; // up to 11 arguments; wasm ignores extra ones
          kernels[ctrl[a + KIND]](ctrl[x], ctrl[x + 1], ctrl[x + 2], ctrl[x + 3], ctrl[x + 4], ctrl[x + 5], ctrl[x + 6], ctrl[x + 7], ctrl[x + 8], ctrl[x + 9], ctrl[x + 10]);
        } catch {
          Atomics.store(ctrl, a + FAILED, 1);
        }
        Atomics.store(ctrl, a + DONE, seen);
        Atomics.notify(ctrl, a + DONE);
      }
    }
  });
})();
