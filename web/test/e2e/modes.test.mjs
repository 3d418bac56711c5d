// The page as a lab (issue 20, items 3–5): on the shipped MNIST model, in
// headless Chromium on the CPU backend, DDIM inversion of a sample and the
// regeneration from its noise stay within a stated RMSE; SDEdit at strength
// 0 returns its input and at 0.6 changes it; inpainting keeps the unmasked
// pixels exactly; the page's bits/dim equals `diffuse likelihood`'s on the
// same image and seed. Screenshots: dist/screenshots/modes-*.png. The other
// models: modes-models.test.mjs; WebGPU: modes-webgpu.test.mjs.
//
// Run: make dist && cd web && node --test --test-concurrency=1 --test-timeout=600000 test/e2e/modes.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildSite, buildTools, startServer, launch, watch, shot, cleanup, TMP, ROOT } from './harness.mjs';

// Reconstruction bound, RMSE in the data range [-1, 1], at 50 DDIM steps
// (the Go test TestInvertMNISTReconstructs measures 0.059 natively).
const INVERT_RMSE = 0.1;
// The page's and the CLI's bits/dim: measured equal to the CLI's 4 printed
// decimals (6.69835 and 6.6984); the margin is for the wasm and native
// kernels' rounding, which could move RK45's steps.
const BPD_TOL = 1e-3;

let site = null;
let server = null;
let browser = null;
const weights = path.join(ROOT, 'weights', 'mnist.safetensors');
const skip = !fs.existsSync(weights) ? 'weights/mnist.safetensors not found' : false;

before(async () => {
  if (skip) return;
  site = buildSite();
  if (!site) throw new Error('the test site could not be built (fixtures missing?)');
  server = await startServer(site);
  browser = await launch(false);
});

after(async () => {
  await browser?.close();
  server?.close();
  cleanup();
});

async function openMNIST() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?model=mnist&sampler=ddim&steps=50&seed=3&batch=1`);
  await page.waitForFunction(() => !document.getElementById('error').hidden || document.body.dataset.state === 'done',
    null, { timeout: 300000, polling: 200 });
  assert.equal(await page.locator('#error').isHidden(), true, 'the page failed to start');
  assert.equal(await page.locator('#modes').isHidden(), false, 'the lab panel is hidden');
  return { ctx, page, w };
}

async function runMode(page, mode) {
  await page.selectOption('#mode', mode);
  await page.evaluate(() => { delete document.getElementById('modes').dataset.state; });
  await page.click('#mode-run');
  await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('modes').dataset.state),
    null, { timeout: 500000, polling: 200 });
  const d = await page.evaluate(() => ({ ...document.getElementById('modes').dataset,
    status: document.getElementById('mode-status').textContent }));
  assert.equal(d.state, 'done', d.status);
  return d;
}

test('inversion reconstructs, SDEdit and inpainting change what they should', { skip }, async () => {
  const { ctx, page, w } = await openMNIST();
  await page.click('#mode-use-sample');
  const inv = await runMode(page, 'invert');
  console.log(`inversion: ${inv.status}`);
  assert.ok(+inv.rmse < INVERT_RMSE, `reconstruction RMSE ${inv.rmse} ≥ ${INVERT_RMSE}`);
  assert.ok((await page.locator('#mode-strip canvas').count()) > 0, 'no trajectory shown');
  await page.locator('#modes').scrollIntoViewIfNeeded();
  await shot(page, 'modes-invert');

  // SDEdit from a drawing: strength 0 is the drawing itself, 0.6 completes it.
  await page.click('#mode-clear');
  const box = await page.locator('#mode-src').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.2);
  await page.mouse.down();
  for (const [fx, fy] of [[0.5, 0.5], [0.5, 0.8]]) await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy, { steps: 8 });
  await page.mouse.up();
  await page.evaluate(() => { document.getElementById('mode-strength').value = '0'; });
  const zero = await runMode(page, 'sdedit');
  assert.equal(+zero.rmse, 0, 'SDEdit at strength 0 changed the input');
  await page.evaluate(() => { document.getElementById('mode-strength').value = '0.6'; });
  const sd = await runMode(page, 'sdedit');
  assert.ok(+sd.rmse > 0.01, `SDEdit at strength 0.6 left the drawing as it was (RMS change ${sd.rmse})`);
  await shot(page, 'modes-sdedit');

  // A second inversion (the drawing), then the slerp between the two.
  await runMode(page, 'invert');
  await page.click('#mode-interp');
  await page.waitForFunction(() => /Interpolated|failed/.test(document.getElementById('mode-status').textContent),
    null, { timeout: 300000, polling: 200 });
  assert.match(await page.locator('#mode-status').textContent(), /Interpolated/);
  assert.equal(await page.evaluate(() => document.getElementById('mode-interp-out').width), 6 * 28 + 5, 'not six frames');
  await shot(page, 'modes-interp');

  // Inpainting: the right half of the sample is painted over (regenerated).
  await page.click('#mode-use-sample');
  await page.selectOption('#mode', 'inpaint');
  await page.check('#mode-paint-mask');
  const mbox = await page.locator('#mode-src').boundingBox(); // the layout moved
  await page.mouse.move(mbox.x + mbox.width * 0.75, mbox.y + mbox.height * 0.05);
  await page.mouse.down();
  await page.mouse.move(mbox.x + mbox.width * 0.75, mbox.y + mbox.height * 0.95, { steps: 12 });
  await page.mouse.up();
  const masked = await page.evaluate(() => Array.from(document.getElementById('modes').modes.mask).filter((v) => v < 0.5).length);
  assert.ok(masked > 50, `only ${masked} pixels were masked`);
  const inp = await runMode(page, 'inpaint');
  assert.ok(+inp.kept <= 1e-6, `inpainting changed the unmasked pixels by up to ${inp.kept}`);
  assert.ok(+inp.rmse > 0, 'inpainting changed nothing');
  await shot(page, 'modes-inpaint');
  // RePaint's resampling (DDPM): 3 passes over blocks of 5 steps.
  await page.fill('#mode-resample', '3');
  await page.fill('#mode-jump', '5');
  const rp = await runMode(page, 'inpaint');
  console.log(`RePaint: ${rp.status}`);
  assert.ok(+rp.kept <= 1e-6, `RePaint changed the unmasked pixels by up to ${rp.kept}`);
  assert.match(rp.status, /140 network calls/, 'not 50 + 9 blocks × 2 passes × 5 steps');
  await shot(page, 'modes-repaint');
  assert.deepEqual(w.errors.filter((e) => !/Failed to load resource/.test(e)), [], 'console errors');
  await ctx.close();
});

test("the page's likelihood is the CLI's", { skip }, async () => {
  const { ctx, page } = await openMNIST();
  await page.click('#mode-use-sample');
  const d = await runMode(page, 'likelihood');
  console.log(`likelihood: ${d.status}`);
  await page.locator('#modes').scrollIntoViewIfNeeded();
  await shot(page, 'modes-likelihood');
  const img = await page.evaluate(() => Array.from(document.getElementById('modes').modes.image));
  const npy = path.join(TMP, 'lik.npy');
  writeNpy(npy, Float32Array.from(img), [1, 1, 28, 28]);
  const t = buildTools();
  assert.ok(t.diffuse, 'the CLI did not build');
  const cls = await page.inputValue('#class'); // the form's label, which the page's run used
  const args = ['likelihood', '--weights', weights, '--x', npy, '--seed', '3', '--each', '--quiet', '--batch', '1'];
  if (cls !== '') args.push('--class', cls);
  const out = execFileSync(t.diffuse, args, { encoding: 'utf8' });
  const cli = Number(out.trim().split('\n')[0].split('\t')[1]);
  console.log(`bits/dim: page ${(+d.bpd).toFixed(5)}, CLI ${cli} (class ${cls || 'none'})`);
  assert.ok(Number.isFinite(cli) && Math.abs(+d.bpd - cli) < BPD_TOL, `page ${d.bpd} bits/dim, CLI ${cli}`);
  await ctx.close();
});

/** Writes a float32 .npy file. */
function writeNpy(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const h = Buffer.alloc(10);
  h.write('\x93NUMPY', 0, 'latin1');
  h[6] = 1; h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}
