// simd_thread.js: one GEMM helper thread of simd_glue.js (a dedicated Web
// Worker in a browser, a worker_threads Worker in Node; a classic script, so
// it runs in both).
//
// The glue posts it { module, memory, layout }: `module` is the kernel
// module's shared-memory twin (kernels_shared.wasm or
// kernels_relaxed_shared.wasm, whichever matches the Go instance's module),
// `memory` the glue's shared WebAssembly.Memory. The thread instantiates the
// module over that memory, answers { ready: true } and then serves jobs from
// the control block at the start of the memory (see GemmPool in
// simd_glue.js): it waits for the sequence word to change, claims the jobs
// of that sequence number one at a time by compare-and-swap, runs each
// job's kernel (gemm or gemm_batch) on its arguments, and stores the
// sequence number into the job's done word. It never posts messages after `ready`.
(function helper() {
  const nodePort = typeof self === 'undefined' ? require('node:worker_threads').parentPort : null;
  const post = (m) => (nodePort ? nodePort.postMessage(m) : self.postMessage(m));
  const onFirstMessage = (f) => {
    if (nodePort) nodePort.once('message', f);
    else self.onmessage = (e) => { self.onmessage = null; f(e.data); };
  };

  onFirstMessage(({ module, memory, layout }) => {
    let kernels;
    try {
      const { gemm, gemm_batch: gemmBatch } = new WebAssembly.Instance(module, { env: { memory } }).exports;
      kernels = [gemm, gemmBatch]; // by a slot's kind word
    } catch (e) {
      post({ error: String(e) });
      return;
    }
    const { seq: SEQ, quit: QUIT, jobs: JOBS, staged: STAGED, slotBase, slotInts, kind: KIND, args: ARGS, done: DONE, failed: FAILED, claim: CLAIM, maxJobs, spinMs, ints } = layout;
    const ctrl = new Int32Array(memory.buffer, 0, ints);
    // Read the sequence number before saying ready: the first job may come
    // the moment the glue has heard from every helper.
    let seen = Atomics.load(ctrl, SEQ);
    post({ ready: true });

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
      // Claim words hold 2·seq while a job of this sequence number waits:
      // a claim can never take a job of another GEMM. Jobs are published
      // while this thread looks, so it looks again until the glue says all
      // are out and a pass finds nothing (a job it misses, the caller does).
      const jobs = Math.min(maxJobs, ctrl[JOBS]);
      for (let took = true, j = 0; ; j++) {
        if (j === jobs) {
          // (A later sequence number, or quitting, also ends the search.)
          if (!took && (Atomics.load(ctrl, STAGED) >= seen || Atomics.load(ctrl, SEQ) !== seen)) break;
          took = false;
          j = -1;
          continue;
        }
        const a = slotBase + j * slotInts;
        if (Atomics.compareExchange(ctrl, a + CLAIM, 2 * seen, 2 * seen + 1) !== 2 * seen) continue;
        took = true;
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
