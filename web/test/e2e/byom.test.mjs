// "Your own model" (issue 20, item 1): a dropped diffusers folder is
// converted in the page's worker by the CLI's Go converter (engine.Import),
// kept in browser storage under its SHA-256 — byte for byte the file
// `diffuse convert` writes — sampled like a shipped model (equal to the
// native sampler on that file, same seed), loaded again after a reload
// without converting, and forgotten on request. A damaged file is one line
// of error, and the page still samples a shipped model after it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  buildSite, buildTools, startServer, launch, watch, nativeSample, maxAbsDiff, shot, cleanup, FIXTURES, TMP,
} from './harness.mjs';

const DESKTOP = { width: 1280, height: 900 };
const TOL = 1e-3; // the CPU backend against the native sampler (browser.test.mjs's)
const CASE = path.join(FIXTURES, 'diffusers', 'cifar_like');
const skip = !fs.existsSync(CASE) ? `fixtures not found at ${FIXTURES} (set FIXTURES_DIR)` : false;

let server = null;
let browser = null;
let cli = null; // the file `diffuse convert` writes for CASE, and its SHA-256
let folder = null; // CASE as a visitor has it: the model files only

before(async () => {
  if (skip) return;
  const tools = buildTools();
  assert.ok(tools.diffuse, 'the native CLI did not build');
  folder = path.join(TMP, 'byom', 'my-cifar');
  fs.mkdirSync(folder, { recursive: true });
  for (const f of ['config.json', 'diffusion_pytorch_model.safetensors']) fs.copyFileSync(path.join(CASE, f), path.join(folder, f));
  const out = path.join(TMP, 'byom', 'cli.safetensors');
  execFileSync(tools.diffuse, ['convert', '--from', 'diffusers', folder, '-o', out], { stdio: 'ignore' });
  const bytes = fs.readFileSync(out);
  cli = { file: out, bytes, sha: crypto.createHash('sha256').update(bytes).digest('hex') };
  server = await startServer(buildSite());
  browser = await launch(false);
});

after(async () => {
  await browser?.close();
  server?.close();
  cleanup();
});

const ready = (page) => page.waitForFunction(() => !document.getElementById('error').hidden ||
  (!document.getElementById('run').disabled && !['loading', 'sampling'].includes(document.body.dataset.state)),
null, { timeout: 300000, polling: 100 });

async function storedSHA(page, name) {
  return page.evaluate(async (name) => {
    const c = await caches.open('diffuse-user-models-v1');
    for (const req of await c.keys()) {
      if (!req.url.endsWith('.safetensors')) continue;
      const b = await (await c.match(req)).arrayBuffer();
      const h = [...new Uint8Array(await crypto.subtle.digest('SHA-256', b))].map((x) => x.toString(16).padStart(2, '0')).join('');
      if (`user-${h.slice(0, 12)}` === name) return h;
    }
    return null;
  }, name);
}

test('a dropped diffusers folder: converted here, sampled as the CLI samples it, kept over a reload, forgotten', { skip }, async (t) => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?model=dev-tiny`);
  await ready(page);
  const view = () => page.evaluate(() => {
    const c = document.getElementById('x0');
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return { thumbs: document.querySelectorAll('#strip canvas').length, png: document.getElementById('png').disabled,
      link: document.getElementById('link').value, drawn: px.some((v) => v !== 0) };
  });
  const before = await view();
  assert.ok(before.thumbs > 0 && before.drawn && !before.png, `dev-tiny was not sampled first: ${JSON.stringify(before)}`);
  await page.click('#byom summary');
  await page.setInputFiles('#byom-folder', folder);
  await page.waitForFunction(() => ['done', 'failed'].includes(document.getElementById('byom').dataset.state), null, { timeout: 300000 });
  assert.equal(await page.isHidden('#byom-error'), true, await page.textContent('#byom-error'));
  const name = `user-${cli.sha.slice(0, 12)}`;
  await ready(page);
  assert.equal(await page.inputValue('#model'), name, 'the new model is picked');
  // The live view is the new model's: dev-tiny's pictures, strip, PNG and link are gone.
  const after = await view();
  assert.deepEqual(after, { thumbs: 0, png: true, link: '', drawn: false }, 'the view still shows the last model');
  const card = await page.textContent('#byom-card');
  for (const want of ['diffusers.UNet2DModel', '32×32', 'RGB', 'unconditional', 'epsilon']) assert.ok(card.includes(want), `card lacks ${want}: ${card}`);
  assert.match(await page.textContent('#model option:checked'), /my-cifar \(yours\)/);
  // What the browser keeps is the CLI's file, byte for byte.
  assert.equal(await storedSHA(page, name), cli.sha, 'the stored file differs from diffuse convert\'s');
  await shot(page, 'byom-imported');

  // Sampled in the page like any model; and through the API (a new worker,
  // loading from storage) equal to the native sampler on the CLI's file.
  await page.getByLabel('Sampler', { exact: true }).selectOption('ddim');
  await page.getByLabel('Steps', { exact: true }).fill('4');
  await page.fill('#batch', '1');
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'failed', 'invalid'].includes(document.body.dataset.state) && document.getElementById('error').hidden !== undefined,
    null, { timeout: 300000 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', await page.textContent('#error'));
  await shot(page, 'byom-sampled');
  const req = { sampler: 'ddim', steps: 4, seed: 7, batch: 2 };
  const res = await page.evaluate(async ({ name, req }) => {
    const { createSampler } = await import('/web/diffuse.js');
    const s = await createSampler({ backend: 'cpu' });
    try {
      const m = await s.loadModel(name);
      const r = await s.sample(m, req);
      return { ok: true, cached: m.cached, x: Array.from(r.x), shape: r.shape };
    } catch (e) {
      return { ok: false, message: e.message };
    } finally { s.dispose(); }
  }, { name, req });
  assert.ok(res.ok, res.message);
  assert.equal(res.cached, true, 'a second worker loads it from storage');
  const ref = nativeSample(cli.file, req);
  assert.deepEqual(res.shape, ref.shape);
  const d = maxAbsDiff(res.x, ref.data);
  t.diagnostic(`max |browser (cpu) - native (${ref.via})| = ${d.toExponential(2)} (tolerance ${TOL})`);
  assert.ok(d <= TOL, `the imported model samples ${d} away from the CLI`);

  // A reload lists it and loads it from storage, converting nothing.
  await page.goto(`${server.url}/?model=${name}`);
  await ready(page);
  assert.equal(await page.inputValue('#model'), name);
  assert.match(await page.textContent('#backend-info'), /came from this device's cache/);
  assert.equal(await page.evaluate(() => document.getElementById('byom').dataset.state), undefined, 'nothing was converted on reload');
  assert.equal(await page.isHidden('#error'), true);

  // Forget removes it from storage and from the picker.
  await page.click('#byom summary');
  await page.click(`button[data-forget="${name}"]`);
  await page.waitForFunction((n) => ![...document.querySelectorAll('#model option')].some((o) => o.value === n), name, { timeout: 60000 });
  assert.equal(await storedSHA(page, name), null, 'the file is still stored');
  assert.equal(await page.evaluate(async () => (await (await caches.open('diffuse-user-models-v1')).keys()).length), 0);
  await ready(page);
  assert.notEqual(await page.inputValue('#model'), name);
  await ctx.close();
  assert.deepEqual(w.foreign, [], 'requests left the origin');
});

// A pickle asks what it is (kind, image size; σ for a ScoreNet) before it is
// converted, and then stores what `diffuse convert` with those flags writes.
test('a lucidrains .pt and a score-SDE .pth: the page asks what the checkpoint does not record', { skip }, async () => {
  const tools = buildTools();
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?model=dev-tiny`);
  await ready(page);
  await page.click('#byom summary');
  const cases = [
    { file: path.join(FIXTURES, 'lucidrains', 'lucid_small', 'model-1.pt'), kind: 'lucidrains', size: '28',
      args: ['--from', 'lucidrains', '--image-size', '28'], card: ['lucidrains.Unet', '28×28', 'v_prediction'] },
    { file: path.resolve('..', 'core', 'scoresde', 'testdata', 'tiny_scorenet.pth'), kind: 'scoresde', size: '28', sigma: '25',
      args: ['--from', 'scoresde', '--size', '28', '--sigma', '25'], card: ['scoresde.ScoreNet', '28×28', 'score'] },
  ];
  for (const c of cases) {
    const out = path.join(TMP, 'byom', `${c.kind}.safetensors`);
    execFileSync(tools.diffuse, ['convert', ...c.args, c.file, '-o', out], { stdio: 'ignore' });
    const sha = crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex');
    await page.evaluate(() => { delete document.getElementById('byom').dataset.state; });
    await page.setInputFiles('#byom-file', c.file);
    await page.waitForSelector('#byom-ask:not([hidden])');
    assert.equal(await page.inputValue('#byom-kind'), c.kind, 'the kind guessed from the file name');
    await page.fill('#byom-size', c.size);
    if (c.sigma) await page.fill('#byom-sigma', c.sigma);
    await shot(page, `byom-ask-${c.kind}`);
    await page.click('#byom-convert');
    await page.waitForFunction(() => ['done', 'failed'].includes(document.getElementById('byom').dataset.state), null, { timeout: 300000 });
    assert.equal(await page.isHidden('#byom-error'), true, await page.textContent('#byom-error'));
    const card = await page.textContent('#byom-card');
    for (const want of c.card) assert.ok(card.includes(want), `${c.kind} card lacks ${want}: ${card}`);
    const name = `user-${sha.slice(0, 12)}`;
    assert.equal(await storedSHA(page, name), sha, `${c.kind}: the stored file differs from diffuse convert's`);
    await ready(page);
    assert.equal(await page.inputValue('#model'), name);
  }
  await ctx.close();
  assert.deepEqual(w.foreign, [], 'requests left the origin');
});

// Our own .safetensors file, dropped on the controls, is taken as it is.
test('a dropped .safetensors file of ours is loaded as it is, not converted', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?model=dev-tiny`);
  await ready(page);
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'cifar-fp16.safetensors'));
    document.querySelector('.controls').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, cli.bytes.toString('base64'));
  await page.waitForFunction(() => ['done', 'failed'].includes(document.getElementById('byom').dataset.state), null, { timeout: 300000 });
  assert.equal(await page.isHidden('#byom-error'), true, await page.textContent('#byom-error'));
  assert.match(await page.textContent('#byom-card'), /cifar-fp16\.safetensors: one of our files, taken as it is/);
  const name = `user-${cli.sha.slice(0, 12)}`;
  assert.equal(await storedSHA(page, name), cli.sha);
  await ready(page);
  assert.equal(await page.inputValue('#model'), name);
  await page.click(`button[data-forget="${name}"]`);
  await page.waitForFunction((n) => ![...document.querySelectorAll('#model option')].some((o) => o.value === n), name, { timeout: 60000 });
  await ctx.close();
  assert.deepEqual(w.foreign, [], 'requests left the origin');
});

test('a damaged file is one line of error, and the page still samples a shipped model', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?model=dev-tiny`);
  await ready(page);
  await page.click('#byom summary');
  for (const [file, buffer, want] of [
    ['truncated.safetensors', cli.bytes.subarray(0, cli.bytes.length >> 1), /truncated\.safetensors/],
    ['model-5.pt', Buffer.from('not a pickle at all'), /lucidrains|score-SDE/],
  ]) {
    await page.setInputFiles('#byom-file', { name: file, mimeType: 'application/octet-stream', buffer });
    if (file.endsWith('.pt')) { // a pickle asks what it is first
      await page.fill('#byom-size', '32');
      await page.click('#byom-convert');
    }
    await page.waitForFunction(() => document.getElementById('byom').dataset.state === 'failed', null, { timeout: 120000 });
    const msg = await page.textContent('#byom-error');
    assert.ok(await page.isVisible('#byom-error'));
    assert.ok(!msg.includes('\n') && msg.length > 10 && msg.length < 400, `not one clear line: ${JSON.stringify(msg)}`);
    if (file.endsWith('.safetensors')) assert.match(msg, want);
    await shot(page, `byom-refused-${file.replace(/\W/g, '-')}`);
    await page.evaluate(() => { delete document.getElementById('byom').dataset.state; });
  }
  // Under the picker: a shipped card's one-line description (its
  // "Description:" line), not the training commands that open mnist's card.
  if (await page.$('#model option[value="mnist"]')) {
    await page.selectOption('#model', 'mnist');
    const info = await page.textContent('#model-info');
    assert.match(info, /Draws 28×28 handwritten digits/);
    assert.doesNotMatch(info, /bash|python3|--steps/);
    await shot(page, 'byom-mnist-description');
    await ready(page);
    await page.selectOption('#model', 'dev-tiny');
    await ready(page);
  }
  // The worker is alive: the shipped model samples.
  await page.getByLabel('Steps', { exact: true }).fill('3');
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'failed', 'invalid'].includes(document.body.dataset.state), null, { timeout: 300000 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', await page.textContent('#error'));
  assert.equal(await page.inputValue('#model'), 'dev-tiny');
  await ctx.close();
  assert.deepEqual(w.foreign, [], 'requests left the origin');
  assert.deepEqual(w.errors.filter((e) => !/favicon/.test(e)), [], 'console errors');
});
