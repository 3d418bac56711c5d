// A full-size public architecture in the page (issue 20, item 2): the
// diffusers quick-start google/ddpm-church-256 UNet2DModel (113.7M
// parameters, 256×256; its public config.json in core/unet/testdata) with
// random weights written at test time by core/unet/unettest/cmd/randunet
// (never committed), imported through "your own model" as a visitor's
// diffusers pipeline folder (the stored file is `diffuse convert`'s, byte
// for byte: the model's name is its SHA-256) and run for one step on the CPU
// backend; a cancel lands inside a network call; a batch that does not fit
// the memory budget is refused before it starts, saying what it needs. With
// BIG_WEBGPU=1, one step on WebGPU too (SwiftShader here: 10–15 minutes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  ROOT, buildSite, buildTools, startServer, launch, watch, nativeSample, maxAbsDiff, shot, cleanup, TMP,
} from './harness.mjs';

const DESKTOP = { width: 1280, height: 900 };
const TOL = 1e-3;
const CFG = path.join(ROOT, 'core', 'unet', 'testdata');

let server = null;
let browser = null;
let folder = null;
let cli = null;
let kept = null; // the first test's page, with the model imported

before(async () => {
  const tools = buildTools();
  assert.ok(tools.diffuse, 'the native CLI did not build');
  const rand = path.join(TMP, 'bin', 'randunet');
  execFileSync('go', ['build', '-o', rand, './core/unet/unettest/cmd/randunet'], { cwd: ROOT, stdio: 'inherit' });
  const dir = path.join(TMP, 'big', 'church-256');
  execFileSync(rand, ['-config', path.join(CFG, 'ddpm_church_256_config.json'),
    '-scheduler', path.join(CFG, 'ddpm_church_256_scheduler_config.json'), '-o', dir], { stdio: 'ignore' });
  folder = dir; // the pipeline folder a visitor has: unet/ and scheduler/
  const out = path.join(TMP, 'big', 'church.safetensors');
  execFileSync(tools.diffuse, ['convert', '--from', 'diffusers', path.join(dir, 'unet'), '-o', out], { stdio: 'ignore' });
  const bytes = fs.readFileSync(out);
  cli = { file: out, sha: crypto.createHash('sha256').update(bytes).digest('hex') };
  server = await startServer(buildSite());
  browser = await launch(true); // WebGPU (SwiftShader here) for the second test
});

after(async () => {
  await kept?.ctx.close();
  await browser?.close();
  server?.close();
  cleanup();
});

const ready = (page) => page.waitForFunction(() => !document.getElementById('error').hidden ||
  (!document.getElementById('run').disabled && !['loading', 'sampling'].includes(document.body.dataset.state)),
null, { timeout: 600000, polling: 250 });

test('ddpm-church-256 (113.7M parameters, 256²) imports and runs one step on the CPU backend', async (t) => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  page.on('console', (m) => t.diagnostic(`console ${m.type()}: ${m.text()}`));
  await page.goto(`${server.url}/?model=dev-tiny&backend=cpu`);
  await ready(page);
  await page.click('#byom summary');
  let t0 = Date.now();
  await page.setInputFiles('#byom-folder', folder);
  await page.waitForFunction(() => ['done', 'failed'].includes(document.getElementById('byom').dataset.state), null, { timeout: 600000, polling: 250 });
  assert.equal(await page.isHidden('#byom-error'), true, await page.textContent('#byom-error'));
  t.diagnostic(`import: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const name = `user-${cli.sha.slice(0, 12)}`;
  await ready(page);
  assert.equal(await page.isHidden('#error'), true, await page.textContent('#error'));
  assert.equal(await page.inputValue('#model'), name, 'the new model is picked');
  await shot(page, 'big-imported');

  await page.getByLabel('Sampler', { exact: true }).selectOption('ddim');
  await page.getByLabel('Steps', { exact: true }).fill('1');
  await page.fill('#batch', '1');
  t0 = Date.now();
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'failed', 'invalid'].includes(document.body.dataset.state), null, { timeout: 600000, polling: 250 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', await page.textContent('#error'));
  t.diagnostic(`one step: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await shot(page, 'big-sampled');

  // Cancel inside the first network call: the CPU backend lets the
  // worker's event loop run between the plan's steps (wasm/app check), so
  // the run stops before its first step ends; no frame with a network call
  // done reaches the page. (3 s is far inside one call of this network on a
  // CPU: tens of seconds at least.)
  await page.getByLabel('Steps', { exact: true }).fill('3');
  await page.evaluate(() => {
    window.__status = [];
    const s = document.getElementById('status');
    new MutationObserver(() => window.__status.push(s.textContent)).observe(s, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#run');
  await page.waitForFunction(() => document.body.dataset.state === 'sampling', null, { timeout: 60000 });
  await page.waitForTimeout(3000);
  t0 = Date.now();
  await page.click('#cancel');
  await page.waitForFunction(() => ['cancelled', 'done', 'error'].includes(document.body.dataset.state), null, { timeout: 600000, polling: 100 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'cancelled');
  t.diagnostic(`cancelled ${((Date.now() - t0) / 1000).toFixed(1)} s after the click`);
  const seen = await page.evaluate(() => window.__status);
  assert.ok(!seen.some((s) => /[1-9]\d* network calls?\b/.test(s)), `a step finished before the cancel took effect: ${seen.join(' | ')}`);

  // What does not fit is refused before it starts, saying what it needs:
  // 4 samples at 256×256 need the weights and 4× one sample's activations.
  await page.fill('#batch', '4');
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'error', 'invalid'].includes(document.body.dataset.state), null, { timeout: 120000, polling: 100 });
  const msg = await page.textContent('#error');
  t.diagnostic(`batch 4: ${msg}`);
  assert.match(msg, /needs [\d.]+ [GM]iB of memory .*over the 1(\.0)? GiB budget/);
  await shot(page, 'big-refused');
  await page.fill('#batch', '1');
  assert.deepEqual(w.foreign, [], 'requests left the origin');
  kept = { ctx, page, name };
});

// The same model on WebGPU (SwiftShader: a CPU, so minutes per step; run
// with BIG_WEBGPU=1).
test('ddpm-church-256 runs one step on WebGPU', { skip: process.env.BIG_WEBGPU !== '1' && 'set BIG_WEBGPU=1' }, async (t) => {
  assert.ok(kept, 'the CPU test did not import the model');
  const { page, name } = kept;
  page.on('console', (m) => t.diagnostic(`console ${m.type()}: ${m.text()}`));
  let t0 = Date.now();
  await page.goto(`${server.url}/?model=${name}&backend=webgpu&sampler=ddim&steps=1&batch=1`); // from this browser's storage
  await ready(page);
  assert.equal(await page.isHidden('#error'), true, await page.textContent('#error'));
  assert.equal(await page.inputValue('#model'), name);
  t.diagnostic(`load on WebGPU: ${((Date.now() - t0) / 1000).toFixed(1)} s; ${await page.textContent('#backend-info')}`);
  t0 = Date.now();
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'failed', 'invalid'].includes(document.body.dataset.state), null, { timeout: 1800000, polling: 500 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', await page.textContent('#error'));
  t.diagnostic(`one step on WebGPU: ${((Date.now() - t0) / 1000).toFixed(1)} s; ${await page.textContent('#stat-backend')}`);
  await shot(page, 'big-sampled-webgpu');
});
