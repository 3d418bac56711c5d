// The sampler pickers and parameter inputs of the app and of
// <diffusion-sampler> are the Go registry's (issue 19): the same samplers
// (dpmpp_3m_diffusers included), display names, default steps and parameter
// labels as `diffuse sample --sampler list --json` prints (engine.Samplers,
// which core/engine's TestSamplersAreTheRegistry checks against
// sampler.List). A list kept by hand in the page or the element fails here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildSite, buildTools, startServer, launch, watch, cleanup, FIXTURES, SHOTS } from './harness.mjs';

const DESKTOP = { width: 1280, height: 800 };

let server = null;
let browser = null;
let registry = null;
const skip = !fs.existsSync(path.join(FIXTURES, 'diffusers', 'mnist_cond'))
  ? `fixtures not found at ${FIXTURES} (set FIXTURES_DIR): the tests need the development models` : false;

before(async () => {
  if (skip) return;
  const tools = buildTools();
  assert.ok(tools.diffuse, 'the native CLI did not build');
  registry = JSON.parse(execFileSync(tools.diffuse, ['sample', '--sampler', 'list', '--json'], { encoding: 'utf8' }));
  server = await startServer(buildSite());
  browser = await launch(false);
});

after(async () => {
  await browser?.close();
  server?.close();
  cleanup();
});

function assertClean(w) {
  assert.deepEqual(w.foreign, [], 'requests left the origin');
  assert.deepEqual(w.csp, [], 'Content Security Policy violations');
}

// The samplers that run the development models (discrete schedules): all
// but those that need their own kind of model (flow, consistency: `requires`),
// which the pickers leave out for a model they cannot run (engine.Info.Samplers).
const runs = () => registry.filter((s) => !s.requires);
const names = () => runs().map((s) => ({ value: s.name, text: s.display }));

test('the app: its sampler picker, default steps and parameter inputs are the Go registry', { skip }, async () => {
  assert.ok(registry.some((s) => s.name === 'dpmpp_3m_diffusers'), 'the registry lacks dpmpp_3m_diffusers');
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?model=dev-tiny&class=1`);
  await page.waitForFunction(() => !document.getElementById('error').hidden ||
    (!document.getElementById('run').disabled && !['loading', 'sampling'].includes(document.body.dataset.state)),
  null, { timeout: 300000, polling: 100 });
  const options = await page.$$eval('#sampler option', (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  assert.deepEqual(options, names());
  // The first visit's steps are DDIM's default from Go, capped for the first
  // view at the app's FIRST_VIEW_STEPS (25: web/app.js; the first image
  // sooner), which stands as the default: another sampler brings its own.
  const ddim = registry.find((s) => s.name === 'ddim');
  assert.equal(await page.inputValue('#steps'), String(Math.min(ddim.defaultSteps, 25)));
  const discrete = await page.evaluate(() => document.getElementById('spacing').disabled === false);
  assert.ok(registry.some((s) => s.requires), 'the registry has no model-specific sampler (flow, consistency) to leave out');
  for (const s of runs()) {
    await page.getByLabel('Sampler', { exact: true }).selectOption(s.name);
    const steps = s.params.find((p) => p.name === 'steps');
    if (steps) {
      assert.equal(await page.inputValue('#steps'), String(s.defaultSteps), `${s.name}: steps`);
      assert.equal(await page.getAttribute('#steps', 'max'), String(steps.max), `${s.name}: steps max`);
    } else {
      assert.equal(await page.isDisabled('#steps'), true, `${s.name} chooses its own steps`);
    }
    const want = s.params.filter((p) => !['steps', 'guidance'].includes(p.name) && !(discrete && p.continuous)).map((p) => p.label);
    const got = await page.$$eval('#sampler-params label', (ls) => ls.map((l) => l.textContent));
    assert.deepEqual(got, want, `${s.name}: parameter inputs`);
  }
  // A visitor's own step count stays when the sampler changes.
  await page.getByLabel('Sampler', { exact: true }).selectOption('ddim');
  await page.getByLabel('Steps', { exact: true }).fill('7');
  await page.getByLabel('Sampler', { exact: true }).selectOption('euler');
  assert.equal(await page.inputValue('#steps'), '7');
  await ctx.close();
  assertClean(w);
});

test('<diffusion-sampler controls>: its picker shows every registry sampler, and runs the one picked', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/web/embed-demo.html`);
  const el = page.locator('#any-sampler');
  await el.scrollIntoViewIfNeeded();
  const state = () => el.getAttribute('state');
  await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('any-sampler').getAttribute('state')), null, { timeout: 300000 });
  assert.equal(await state(), 'done', await page.evaluate(() => document.getElementById('any-sampler').shadowRoot.querySelector('.error').textContent));
  const picker = el.getByLabel('Sampler', { exact: true });
  const options = await picker.evaluate((s) => [...s.options].map((o) => ({ value: o.value, text: o.textContent })));
  assert.deepEqual(options, names());
  assert.ok(options.some((o) => o.value === 'dpmpp_3m_diffusers'));
  // Picking a sampler sets the attribute and reruns with its display name in the caption.
  await picker.selectOption('dpmpp_3m_diffusers');
  assert.equal(await el.getAttribute('sampler'), 'dpmpp_3m_diffusers');
  await page.waitForFunction(() => document.getElementById('any-sampler').getAttribute('state') === 'done' &&
    document.getElementById('any-sampler').getAttribute('sampler') === 'dpmpp_3m_diffusers', null, { timeout: 300000 });
  const s = registry.find((r) => r.name === 'dpmpp_3m_diffusers');
  const meta = await page.evaluate(() => document.getElementById('any-sampler').shadowRoot.querySelector('.meta').textContent);
  assert.ok(meta.startsWith(s.display), `caption "${meta}" does not name ${s.display}`);
  fs.mkdirSync(SHOTS, { recursive: true });
  await el.screenshot({ path: path.join(SHOTS, 'embed-controls-1280x800.png') });
  // rk45 has no steps: the element shows its tolerances, labelled from Go, at the registry's suggested value.
  await picker.selectOption('rk45');
  const rk = registry.find((r) => r.name === 'rk45');
  const labels = await el.locator('.controls label').evaluateAll((ls) => ls.map((l) => l.firstChild.textContent));
  const want = ['Sampler', ...rk.params.filter((p) => !['steps', 'guidance'].includes(p.name) && !p.continuous).map((p) => p.label)];
  assert.deepEqual(labels, want);
  assert.equal(await el.getByLabel('Relative tolerance').inputValue(), String(rk.params.find((p) => p.name === 'rtol').suggested));
  await page.evaluate(() => document.getElementById('any-sampler').stop());
  await ctx.close();
  assertClean(w);
});
