// The straight-paths figure (web/flowfig.js, issue 21 item 4) in headless
// Chromium: with a 2-D toy loaded, the page loads the three shipped flow toys,
// draws each one's particle paths over 25 Euler steps and its 1-call and
// 25-call samples from the same noise; reflow's paths are straighter than
// the flow model's and its 1-call sample is closer to its 25-call one
// (Liu et al. 2023, sec. 2.3: the reason to reflow). Screenshot:
// dist/screenshots/flowfig.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildSite, startServer, launch, watch, cleanup, shot, FIXTURES, DIST } from './harness.mjs';

const MODELS = ['toy2d-flow', 'toy2d-reflow', 'toy2d-cm'];
let server = null;
let browser = null;
const manifest = path.join(DIST, 'weights', 'manifest.json');
const shipped = fs.existsSync(manifest) ? JSON.parse(fs.readFileSync(manifest, 'utf8')).models.map((m) => m.name) : [];
const skip = !fs.existsSync(path.join(FIXTURES, 'diffusers', 'mnist_cond'))
  ? `fixtures not found at ${FIXTURES} (set FIXTURES_DIR): the tests need the development models`
  : MODELS.every((m) => shipped.includes(m)) ? false : 'dist/ lacks the flow toys: run make dist';

before(async () => {
  if (skip) return;
  server = await startServer(buildSite());
  browser = await launch(false);
});

after(async () => {
  await browser?.close();
  server?.close();
  cleanup();
});

test('the straight-paths figure: curved vs reflowed paths, 1 call vs 25, on the three flow toys', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const w = watch(ctx, server.url);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?model=toy2d-flow&seed=3&backend=cpu`);
  await page.waitForFunction(() => !document.getElementById('error').hidden ||
    (!document.getElementById('run').disabled && !['loading', 'sampling'].includes(document.body.dataset.state)),
  null, { timeout: 300000, polling: 100 });
  assert.equal(await page.$eval('#error', (e) => e.hidden), true, await page.$eval('#error', (e) => e.textContent));
  assert.equal(await page.$eval('#flowfig-section', (e) => e.hidden), false, 'the figure shows with a 2-D toy');
  // The straightness measure on paths whose answer is known: a straight path (in 3 frames) is 1,
  // an L of two unit legs √2/2, and the mean over particles is taken.
  const known = await page.evaluate(async () => {
    const { straightness } = await import('/web/render.js');
    const f = (pts) => Float32Array.from(pts.flat());
    // Two particles [B = 2, C = 2]: particle 0 straight, particle 1 an L.
    return straightness([f([[0, 0], [0, 0]]), f([[1, 1], [1, 0]]), f([[2, 2], [1, 1]])], [2, 2, 1, 1]);
  });
  assert.ok(Math.abs(known - (1 + Math.SQRT1_2) / 2) < 1e-6, `straightness of a line and an L: ${known}`);
  await page.click('#flowfig .flowfig-run');
  await page.waitForFunction(() => /^(Done|Failed|Cancelled)/.test(document.querySelector('#flowfig .flowfig-status').textContent),
    null, { timeout: 300000, polling: 250 });
  assert.match(await page.$eval('#flowfig .flowfig-status', (e) => e.textContent), /^Done/);
  const rows = await page.$$eval('#flowfig .flowfig-row', (rs) => rs.map((r) => ({
    model: r.dataset.model, gap: +r.dataset.gap, straight: +r.dataset.straightness,
    // Lit pixels of each canvas (not the #111 background or the faint axes): every picture has
    // points or lines (the flow model's 1-call cloud is a small blob: about 200).
    lit: [...r.querySelectorAll('canvas')].map((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 3 * 0x40) n++;
      return n;
    }),
    text: r.textContent,
  })));
  assert.deepEqual(rows.map((r) => r.model), MODELS, JSON.stringify(rows.map((r) => r.text)));
  const [flow, reflow, cm] = rows;
  for (const r of [flow, reflow]) {
    assert.equal(r.lit.length, 3, `${r.model}: paths, 1 call, 25 calls`);
    assert.ok(r.straight > 0 && r.straight <= 1 + 1e-9, `${r.model}: straightness ${r.straight}`);
  }
  assert.equal(cm.lit.length, 2, 'the consistency row has no paths, two samples');
  assert.ok(Number.isNaN(cm.straight), 'no straightness without paths');
  for (const r of rows) {
    for (const n of r.lit) assert.ok(n > 40, `${r.model}: a picture with ${n} lit pixels: ${r.lit}`);
    assert.ok(r.gap > 0 && Number.isFinite(r.gap), `${r.model}: 1-call vs 25-call RMS ${r.gap}`);
  }
  // Reflow's point: straighter paths, so one call lands near where 25 do.
  assert.ok(reflow.straight > flow.straight, `straightness: reflow ${reflow.straight}, flow ${flow.straight}`);
  assert.ok(reflow.gap < 0.5 * flow.gap, `1 vs 25 calls: reflow ${reflow.gap}, flow ${flow.gap}`);
  console.log(`# straightness flow ${flow.straight.toFixed(3)}, reflow ${reflow.straight.toFixed(3)}; ` +
    `RMS(1 call, 25 calls) flow ${flow.gap.toFixed(3)}, reflow ${reflow.gap.toFixed(3)}, cm ${cm.gap.toFixed(3)}`);
  fs.mkdirSync(path.join(DIST, 'screenshots'), { recursive: true });
  await page.locator('#flowfig-section').screenshot({ path: path.join(DIST, 'screenshots', 'flowfig.png') });
  await shot(page, 'flowfig-page');
  await ctx.close();
  assert.deepEqual(w.foreign, [], 'requests left the origin');
  assert.deepEqual(w.csp, [], 'Content Security Policy violations');
  assert.deepEqual(w.errors.filter((e) => !/favicon/.test(e)), [], 'console errors');
});
