// Every lab mode (web/modes.js) on the WebGPU backend (SwiftShader in
// headless Chromium) against the CPU backend in the same browser, on MNIST:
// inversion + regeneration, SDEdit and inpainting (in the live view), and
// likelihood (through the API the lab calls, at a looser tolerance). Screenshot: dist/screenshots/modes-webgpu.png.
//
// Run: make dist && cd web && node --test --test-concurrency=1 --test-timeout=600000 test/e2e/modes-webgpu.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildSite, startServer, launch, shot, cleanup, openLab, runLab, setStrength, maxAbsDiff, ROOT } from './harness.mjs';

let server = null;
let browser = null;
const skip = !fs.existsSync(path.join(ROOT, 'weights', 'mnist.safetensors')) ? 'weights/mnist.safetensors not found' : false;

before(async () => {
  if (skip) return;
  const site = buildSite();
  if (!site) throw new Error('the test site could not be built (fixtures missing?)');
  server = await startServer(site);
  browser = await launch(true);
});

after(async () => {
  await browser?.close();
  server?.close();
  cleanup();
});

// WebGPU against the CPU backend, same page, same inputs: every mode's
// result within these bounds (max abs difference in the data range [-1, 1];
// bits/dim absolute). The network's f32 sums run in another order on the
// GPU (browser.test.mjs allows 5e-3 for a whole sample); SDEdit and
// inpainting are the same kind of run. Inversion then regeneration chains
// two 10-step runs; RK45's step control may pick other steps on other
// rounding.
const GPU_TOL = { sample: 5e-3, invert: 2e-2 };
// RK45's tolerance for the likelihood here. Each backend's RK45 picks its
// own steps from its own rounding, so log p agrees to about the tolerance
// times its change along the ODE: the bound is 10 × LIK_TOL × |Δlog p| in
// bits/dim (÷ D ln 2).
const LIK_TOL = 1e-4;

test('the modes on WebGPU (SwiftShader) give the CPU backend\'s results', { skip }, async () => {
  const out = {};
  for (const backend of ['cpu', 'webgpu']) {
    const { ctx, page, w } = await openLab(browser, server.url, `model=mnist&sampler=ddim&steps=10&seed=3&batch=1&backend=${backend}`);
    assert.equal(await page.textContent('#stat-backend'), backend === 'webgpu' ? 'WebGPU' : 'CPU');
    await page.click('#mode-use-sample');
    const r = {};
    const inv = await runLab(page, 'invert');
    r.invert = await page.evaluate(() => Array.from(document.getElementById('modes').modes.result));
    r.rmse = +inv.rmse;
    await setStrength(page, 0.6);
    await runLab(page, 'sdedit');
    r.sdedit = await page.evaluate(() => Array.from(document.getElementById('modes').modes.result));
    assert.equal(await page.textContent('#stat-backend'), backend === 'webgpu' ? 'WebGPU' : 'CPU', 'the live view ran elsewhere');
    await page.selectOption('#mode', 'inpaint');
    await page.check('#mode-paint-mask');
    const box = await page.locator('#mode-src').boundingBox();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.05);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.95, { steps: 12 });
    await page.mouse.up();
    await page.uncheck('#mode-paint-mask');
    const inp = await runLab(page, 'inpaint');
    assert.ok(+inp.kept <= 1e-6, `${backend}: inpainting changed the kept pixels by ${inp.kept}`);
    r.inpaint = await page.evaluate(() => Array.from(document.getElementById('modes').modes.result));
    console.log(`${backend}: inversion RMSE ${r.rmse.toFixed(4)}; SDEdit and inpainting done`);
    // Likelihood through the API the lab calls (sampler.likelihood), at a
    // looser RK45 tolerance than the lab's CLI defaults (~690 network calls,
    // too many for SwiftShader in a test): the same code, fewer steps.
    // (At 1e-3 the two backends' step choices moved bits/dim by 0.011.)
    const lik = await page.evaluate(async ({ backend, LIK_TOL }) => {
      const { createSampler } = await import('/web/diffuse.js');
      const s = await createSampler({ backend });
      try {
        const m = await s.loadModel('mnist');
        const t0 = performance.now();
        const res = await s.likelihood(m, document.getElementById('modes').modes.image, { seed: 3, rtol: LIK_TOL, atol: LIK_TOL });
        return { ...res, ms: performance.now() - t0, backend: m.backend.name };
      } finally { s.dispose(); }
    }, { backend, LIK_TOL });
    assert.equal(lik.backend, backend);
    r.bpd = lik.bitsPerDim;
    r.dlogp = lik.deltaLogP;
    console.log(`${backend}: likelihood ${lik.bitsPerDim.toFixed(5)} bits/dim, ${lik.nfe} network calls, ${(lik.ms / 1e3).toFixed(1)} s`);
    if (backend === 'webgpu') {
      await page.locator('#modes').scrollIntoViewIfNeeded();
      await shot(page, 'modes-webgpu');
    }
    assert.deepEqual(w.errors.filter((e) => !/Failed to load resource/.test(e)), [], `${backend}: console errors`);
    out[backend] = r;
    await ctx.close();
  }
  const { cpu, webgpu: gpu } = out;
  const d = { invert: maxAbsDiff(cpu.invert, gpu.invert), sdedit: maxAbsDiff(cpu.sdedit, gpu.sdedit),
    inpaint: maxAbsDiff(cpu.inpaint, gpu.inpaint), bpd: Math.abs(cpu.bpd - gpu.bpd) };
  console.log(`WebGPU vs CPU: inversion+regeneration ${d.invert.toExponential(2)}, SDEdit ${d.sdedit.toExponential(2)}, inpainting ${d.inpaint.toExponential(2)} (max abs); bits/dim ${cpu.bpd.toFixed(5)} vs ${gpu.bpd.toFixed(5)}`);
  assert.ok(Math.abs(gpu.rmse - cpu.rmse) < GPU_TOL.invert, `inversion RMSE: WebGPU ${gpu.rmse}, CPU ${cpu.rmse}`);
  assert.ok(d.invert < GPU_TOL.invert, `inversion differs by ${d.invert}`);
  assert.ok(d.sdedit < GPU_TOL.sample, `SDEdit differs by ${d.sdedit}`);
  assert.ok(d.inpaint < GPU_TOL.sample, `inpainting differs by ${d.inpaint}`);
  const bpdTol = (10 * LIK_TOL * Math.abs(cpu.dlogp)) / (784 * Math.LN2);
  console.log(`bits/dim bound ${bpdTol.toExponential(2)} (Δlog p ${cpu.dlogp.toFixed(1)} nats)`);
  assert.ok(d.bpd < bpdTol, `bits/dim differ by ${d.bpd}, over ${bpdTol}`);
});

