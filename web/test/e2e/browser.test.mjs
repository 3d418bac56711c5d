// End-to-end tests of the browser app in headless Chromium (make test-browser).
//
// They run against a copy of dist/ with the random-weight development models
// (built from the diffusers fixtures), served by tools/serve. The comparisons
// with the native sampler use the same request on the same model:
//   CPU backend (Go compiled to wasm):   max |browser - native| <= 1e-3
//   WebGPU backend (f32 kernels, other summation order): <= 5e-3
// Screenshots of the app and the blog demo at 390x844 and 1280x800 go to
// dist/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  buildSite, startServer, launch, watch, nativeSample, maxAbsDiff, shot, JANK_SCRIPT, cleanup,
  rebuildServiceWorker, FIXTURES,
} from './harness.mjs';

const TOL = { cpu: 1e-3, webgpu: 5e-3 };
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

let site = null;
let server = null;
let gpuBrowser = null;
let plainBrowser = null;
const skip = !fs.existsSync(path.join(FIXTURES, 'diffusers', 'mnist_cond'))
  ? `fixtures not found at ${FIXTURES} (set FIXTURES_DIR): the tests need the development models` : false;

before(async () => {
  if (skip) return;
  site = buildSite();
  server = await startServer(site);
  gpuBrowser = await launch(true);
  plainBrowser = await launch(false);
});

after(async () => {
  await gpuBrowser?.close();
  await plainBrowser?.close();
  server?.close();
  cleanup();
});

function origin() { return server.url; }

/** Asserts a context issued no request to another origin and met no CSP violation. */
function assertClean(w) {
  assert.deepEqual(w.foreign, [], 'requests left the origin');
  assert.deepEqual(w.csp, [], 'Content Security Policy violations');
}

/** Samples through the ES module API inside a page; returns the result with
 * the frames' summary. */
async function apiSample(page, backend, request) {
  return page.evaluate(async ({ backend, request }) => {
    const { createSampler } = await import('/web/diffuse.js');
    const s = await createSampler({ backend });
    try {
      const m = await s.loadModel(request.model);
      const frames = [];
      const r = await s.sample(m, { ...request, onStep: (f) => frames.push({ index: f.index, total: f.total, level: f.level, images: !!(f.x && f.x0), n: f.x ? f.x.length : 0 }) });
      return { ok: true, backend: m.backend, x: Array.from(r.x), shape: r.shape, nfe: r.nfe, frames };
    } catch (e) {
      return { ok: false, kind: e.kind, message: e.message };
    } finally {
      s.dispose();
    }
  }, { backend, request });
}

const REQ = { model: 'dev-tiny', sampler: 'ddim', steps: 4, seed: 7, class: 3, guidance: 2, batch: 2 };

function checkAgainstNative(t, res, req) {
  const ref = nativeSample(path.join(site, 'weights', `${req.model}.safetensors`), req);
  assert.deepEqual(res.shape, ref.shape);
  const d = maxAbsDiff(res.x, ref.data);
  const name = res.backend.name;
  t.diagnostic(`${name}: max |browser - native (${ref.via})| = ${d.toExponential(2)} (tolerance ${TOL[name]})`);
  assert.ok(d <= TOL[name], `${name} sample differs from the native one by ${d}`);
}

test('without WebGPU: the API picks the CPU, streams every step, matches the native sample', { skip }, async (t) => {
  const ctx = await plainBrowser.newContext();
  const w = watch(ctx, origin());
  const page = await ctx.newPage();
  await page.goto(`${origin()}/web/embed-demo.html#nothing`, { waitUntil: 'domcontentloaded' });
  const adapter = await page.evaluate(async () => !!(navigator.gpu && await navigator.gpu.requestAdapter()));
  assert.equal(adapter, false, 'this browser was meant to have no WebGPU adapter');
  const res = await apiSample(page, 'auto', REQ);
  assert.ok(res.ok, res.message);
  assert.equal(res.backend.name, 'cpu');
  assert.match(res.backend.reason, /WebGPU/);
  assert.equal(res.frames.length, 4);
  res.frames.forEach((f, i) => {
    assert.equal(f.index, i);
    assert.equal(f.total, 4);
    assert.ok(f.images && f.n === 2 * 12 * 12, `frame ${i} lacks its images`);
    if (i) assert.ok(f.level < res.frames[i - 1].level, 'noise level must fall');
  });
  checkAgainstNative(t, res, REQ);
  // tools/serve makes the page cross-origin isolated, so the SIMD backend
  // gets its GEMM helper threads.
  assert.match(res.backend.detail, /WebAssembly SIMD, \d+ threads/);
  const gpu = await apiSample(page, 'webgpu', { ...REQ, steps: 1 });
  assert.equal(gpu.ok, false);
  assert.equal(gpu.kind, 'user', 'asking for WebGPU where there is none is the user\'s error, with a message');
  await ctx.close();
  assertClean(w);
});

test('SIMD helper threads: on the served page a GEMM split over Web Workers gives the bits of one thread, and Go runs on shared memory', { skip }, async () => {
  const ctx = await plainBrowser.newContext();
  const w = watch(ctx, origin());
  const page = await ctx.newPage();
  await page.goto(`${origin()}/web/embed-demo.html#nothing`, { waitUntil: 'domcontentloaded' });
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'tools/serve should make the page cross-origin isolated');
  const r = await page.evaluate(async () => {
    const { attachSimd } = await import('/web/simd_glue.js');
    // C = A·B + bias for one 61×777×123 GEMM (awkward sizes), over a fake
    // Go memory, as wasm/simd calls it: repeated until a helper took part.
    const gemm = async (threads) => {
      const go = { importObject: {} };
      const mem = new WebAssembly.Memory({ initial: 256, maximum: 1024, shared: true }); // as shareGoMemory makes Go's
      const m = 61, n = 777, kd = 123, ldc = 780;
      const ap = 1024, bp = ap + 4 * 64 * kd, c = bp + 4 * 784 * kd, bias = c + 4 * m * ldc;
      const f = new Float32Array(mem.buffer);
      for (let i = ap >> 2; i < (bias >> 2) + 64; i++) f[i] = Math.sin(i);
      let out = null;
      go.run = async () => {
        const t0 = performance.now();
        do go.importObject.simd.gemm(ap, bp, c, ldc, m, n, kd, bias, 0, 1);
        while (threads > 1 && attached.stats.helped === 0 && performance.now() - t0 < 5000);
        out = Array.from(new Float32Array(mem.buffer, c, m * ldc));
      };
      const attached = await attachSimd(go, ['/web/kernels.wasm'], { shared: ['/web/kernels_shared.wasm'], threads });
      // (threads and stats are read after go.run, which starts the helpers.)
      await go.run({ exports: { mem } });
      return { out, threads: attached.threads, stats: { ...attached.stats } };
    };
    const one = await gemm(1), two = await gemm(2);
    let diff = -1;
    for (let i = 0; i < one.out.length; i++) if (!Object.is(one.out[i], two.out[i])) { diff = i; break; }
    return { threads: two.threads, stats: two.stats, diff };
  });
  assert.equal(r.threads, 2, 'the helper thread did not start');
  assert.ok(r.stats.helped > 0, `no helper computed a column range (${JSON.stringify(r.stats)})`);
  assert.equal(r.diff, -1, `element ${r.diff} differs from one thread`);
  await ctx.close();
  assertClean(w);
});

test('with WebGPU (SwiftShader): samples on WebGPU when the backend is available, else on the CPU; matches native', { skip }, async (t) => {
  const ctx = await gpuBrowser.newContext();
  const w = watch(ctx, origin());
  const page = await ctx.newPage();
  await page.goto(`${origin()}/web/embed-demo.html#nothing`, { waitUntil: 'domcontentloaded' });
  const adapter = await page.evaluate(async () => !!(navigator.gpu && await navigator.gpu.requestAdapter()));
  t.diagnostic(`WebGPU adapter in this browser: ${adapter}`);
  let res = await apiSample(page, 'webgpu', REQ);
  if (!res.ok) {
    t.diagnostic(`backend 'webgpu' refused (${res.message}); sampling with 'auto'`);
    assert.equal(res.kind, 'user');
    assert.equal(adapter, false, 'an adapter exists, yet the WebGPU backend was refused');
    res = await apiSample(page, 'auto', REQ);
  }
  assert.ok(res.ok, res.message);
  t.diagnostic(`backend: ${res.backend.name} [${res.backend.detail}] (${res.backend.reason})`);
  assert.equal(res.frames.length, 4);
  checkAgainstNative(t, res, REQ);
  // 'auto' passes over a software adapter (SwiftShader here) for the CPU.
  const auto = await apiSample(page, 'auto', { ...REQ, steps: 1 });
  assert.ok(auto.ok, auto.message);
  t.diagnostic(`auto: ${auto.backend.name} (${auto.backend.reason})`);
  await ctx.close();
  assertClean(w);
});

/** Opens the app and waits until its model is loaded and the run the page
 * starts by itself on a cheap first load (issue 18) has finished. */
async function openApp(ctx, query = '') {
  const page = await ctx.newPage();
  await page.addInitScript(JANK_SCRIPT);
  await page.goto(`${origin()}/${query}`);
  await page.waitForFunction(() => !document.getElementById('error').hidden ||
    (!document.getElementById('run').disabled && !['loading', 'sampling'].includes(document.body.dataset.state)), null, { timeout: 300000 });
  return page;
}

async function waitSampled(page) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 300000 });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== 'done') assert.fail(`sampling failed: ${await page.textContent('#error')}`);
}

/** Pixels of a canvas as an array (to compare two renderings). */
function canvasPixels(page, id) {
  return page.evaluate((id) => {
    const c = document.getElementById(id);
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
  }, id);
}

test('app: controls drive a run, the live view fills in, the main thread stays responsive, PNG + share link reproduce the image', { skip }, async (t) => {
  const ctx = await gpuBrowser.newContext({ viewport: DESKTOP, acceptDownloads: true });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny');
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  // Everything below is done through the labelled controls.
  await page.getByLabel('Model', { exact: true }).selectOption('dev-tiny');
  await page.getByLabel('Sampler', { exact: true }).selectOption('dpmpp_2m');
  assert.ok(await page.getByLabel('σ spacing').isVisible(), 'the sampler\'s own parameters are shown');
  await page.getByLabel('Sampler', { exact: true }).selectOption('ddim');
  assert.ok(await page.getByLabel('η (eta)').isVisible());
  await page.getByLabel('Steps', { exact: true }).fill('5');
  await page.getByLabel('Seed', { exact: true }).fill('12345');
  await page.getByLabel('Class').selectOption('4');
  await page.getByLabel('Guidance scale').fill('1.5');
  await page.getByLabel('Batch size').fill('2');
  await page.getByRole('button', { name: 'Random seed' }).click();
  const seed = await page.getByLabel('Seed', { exact: true }).inputValue();
  assert.notEqual(seed, '12345', 'the dice button sets a new seed');
  const t0 = await page.evaluate(() => performance.now());
  await page.getByRole('button', { name: 'Sample', exact: true }).click();
  await waitSampled(page);
  const t1 = await page.evaluate(() => performance.now());

  const jank = await page.evaluate(([a, b]) => {
    const j = window.__jank;
    const inRun = (e) => e.start + e.dur >= a && e.start <= b;
    return { long: j.long.filter(inRun).map((e) => e.dur), maxGap: Math.max(0, ...j.gaps.filter(inRun).map((e) => e.dur)) };
  }, [t0, t1]);
  t.diagnostic(`main thread while sampling (${((t1 - t0) / 1000).toFixed(1)} s): long tasks ${JSON.stringify(jank.long.map(Math.round))} ms, longest rAF gap ${Math.round(jank.maxGap)} ms`);
  assert.ok(jank.long.every((d) => d <= 200), `a main-thread task took ${Math.max(...jank.long)} ms`);

  const view = await page.evaluate(() => ({
    strip: document.querySelectorAll('#strip canvas').length,
    step: document.getElementById('stat-step').textContent,
    total: document.getElementById('stat-total').textContent,
    backend: document.getElementById('stat-backend').textContent,
    grid: [document.getElementById('x0').width, document.getElementById('x0').height],
    link: document.getElementById('link').value,
  }));
  assert.equal(view.strip, 10, 'trajectory strip: 5 x_t and 5 x0 thumbnails');
  assert.equal(view.step, 'step 5/5 · 5 network calls');
  assert.match(view.total, /\d/);
  assert.match(view.backend, /CPU|WebGPU/);
  assert.deepEqual(view.grid, [25, 12], 'a batch of 2 is drawn as a 2x1 grid');
  const plotInk = await page.evaluate(() => {
    const c = document.getElementById('plot');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
    return n;
  });
  assert.ok(plotInk > 500, 'the noise-level plot is drawn');

  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download PNG' }).click()]);
  const png = fs.readFileSync(await dl.path());
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  assert.match(dl.suggestedFilename(), /^dev-tiny-ddim-5steps-seed\d+-class4\.png$/);
  const [dlGrid] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download grid' }).click()]);
  assert.match(dlGrid.suggestedFilename(), /-grid\.png$/);

  await page.getByRole('button', { name: 'Copy link' }).click();
  const link = await page.getByLabel('Link to this image').inputValue();
  for (const k of ['model=dev-tiny', 'sampler=ddim', 'steps=5', `seed=${seed}`, 'class=4', 'guidance=1.5', 'batch=2', 'eta=0']) {
    assert.ok(link.includes(k), `the link lacks ${k}: ${link}`);
  }
  const first = await canvasPixels(page, 'x0');
  const page2 = await ctx.newPage();
  await page2.goto(link);
  await waitSampled(page2);
  assert.equal(await page2.getByLabel('Seed', { exact: true }).inputValue(), seed);
  assert.deepEqual(await canvasPixels(page2, 'x0'), first, 'the shared link reproduces the same image');
  await ctx.close();
  assertClean(w);
});

test('damaged weights: a truncated or corrupted file shows a clear error and the page keeps working', { skip }, async () => {
  const ctx = await plainBrowser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-truncated');
  await page.waitForSelector('#error:not([hidden])');
  const msg = await page.textContent('#error');
  assert.match(msg, /incomplete/i, msg);
  assert.equal(await page.isDisabled('#run'), true);
  await page.getByLabel('Model', { exact: true }).selectOption('dev-corrupt');
  await page.waitForFunction(() => /corrupted/i.test(document.getElementById('error').textContent), null, { timeout: 60000 });
  await page.getByLabel('Model', { exact: true }).selectOption('dev-tiny');
  await page.waitForFunction(() => !document.getElementById('run').disabled, null, { timeout: 60000 });
  assert.equal(await page.isVisible('#error'), false, 'the error goes away');
  await page.getByLabel('Steps', { exact: true }).fill('2');
  await page.getByRole('button', { name: 'Sample', exact: true }).click();
  await waitSampled(page);
  // The damaged files were never cached.
  const cached = await page.evaluate(async () => (await (await caches.open('diffuse-weights-v1')).keys()).map((r) => r.url));
  assert.ok(cached.every((u) => !/dev-(truncated|corrupt)/.test(u)), `damaged weights were cached: ${cached}`);
  await ctx.close();
  assertClean(w);
});

test('hostile input: a Go panic fails only that call (kind internal) and the worker keeps serving', { skip }, async () => {
  const ctx = await plainBrowser.newContext();
  const w = watch(ctx, origin());
  const page = await ctx.newPage();
  await page.goto(`${origin()}/web/embed-demo.html#nothing`, { waitUntil: 'domcontentloaded' });
  const res = await page.evaluate(async () => {
    const { createSampler } = await import('/web/diffuse.js');
    const s = await createSampler({ backend: 'cpu' });
    const fatal = [];
    s.on((e) => fatal.push(e.message));
    const m = await s.loadModel('dev-tiny');
    const out = { calls: [] };
    const attempt = async (what, f) => {
      try {
        await f();
        out.calls.push({ what, ok: true });
      } catch (e) {
        out.calls.push({ what, ok: false, kind: e.kind, message: e.message });
      }
    };
    const point = { t: 500, alpha: 0.5, sigma: 0.8, level: 1.6 };
    const n = m.info.shape.reduce((a, b) => a * b, 1);
    // Arguments of the wrong type reach Go's syscall/js, which panics on them.
    await attempt('field, xs a number', () => s.field(m, point, 5));
    await attempt('field, point not numbers', () => s.field(m, { t: 'x' }, new Float32Array(n)));
    await attempt('sample after', async () => {
      const r = await s.sample(m, { sampler: 'ddim', steps: 2, seed: 1, class: 1 });
      if (r.x.length !== n) throw new Error(`x has ${r.x.length} values, want ${n}`);
    });
    await attempt('field after', () => s.field(m, point, new Float32Array(n)));
    out.fatal = [...fatal];
    out.dead = s.dead;
    s.dispose();
    return out;
  });
  assert.deepEqual(res.fatal, [], 'the worker must not die');
  assert.equal(res.dead, null);
  for (const c of res.calls.slice(0, 2)) {
    assert.equal(c.ok, false, `${c.what} succeeded`);
    assert.equal(c.kind, 'internal', `${c.what}: ${c.message}`);
    assert.match(c.message, /panic/, c.what);
  }
  for (const c of res.calls.slice(2)) assert.ok(c.ok, `${c.what}: ${c.message}`);
  await ctx.close();
  assertClean(w);
});

test('offline: a second visit downloads nothing, and after one visit the app works offline', { skip }, async () => {
  const ctx = await gpuBrowser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny');
  // (waitForFunction needs a synchronous predicate: a Promise counts as true.)
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 60000, polling: 250 });
  // (The service worker's install also precaches the site's default model.)
  const weightsFetches = () => w.requests.filter((u) => u.includes('/dev-tiny.safetensors')).length;
  assert.equal(weightsFetches(), 1, 'one download of the weights on the first visit');

  const again = await openApp(ctx, '?model=dev-tiny');
  // (The page samples by itself on load, so the status moves on: the backend line keeps it.)
  assert.match(await again.textContent('#backend-info'), /from this device's cache/);
  assert.equal(weightsFetches(), 1, 'the second visit downloaded the weights again');
  await again.close();

  await ctx.setOffline(true);
  await page.reload();
  await page.waitForFunction(() => !document.getElementById('run').disabled || !document.getElementById('error').hidden, null, { timeout: 120000 });
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  await page.getByLabel('Steps', { exact: true }).fill('2');
  await page.getByRole('button', { name: 'Sample', exact: true }).click();
  await waitSampled(page);
  const embed = await ctx.newPage();
  await embed.goto(`${origin()}/web/embed-demo.html`);
  assert.match(await embed.title(), /DDIM/);
  await ctx.setOffline(false);
  await ctx.close();
  assertClean(w);
});

test('blog demo: every embed renders, all share one worker and one weights download; screenshots', { skip }, async (t) => {
  const ctx = await plainBrowser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await ctx.newPage();
  const workers = [];
  page.on('worker', (wk) => workers.push(wk.url()));
  await page.goto(`${origin()}/web/embed-demo.html`);
  const n = await page.locator('diffusion-sampler').count();
  assert.ok(n >= 3, `${n} embeds`);
  for (let i = 0; i < n; i++) {
    await page.locator('diffusion-sampler').nth(i).scrollIntoViewIfNeeded();
    await page.waitForFunction((i) => ['done', 'error'].includes(document.querySelectorAll('diffusion-sampler')[i].getAttribute('state')), i, { timeout: 300000 });
  }
  const states = await page.evaluate(() => [...document.querySelectorAll('diffusion-sampler')].map((e) => ({
    state: e.getAttribute('state'),
    error: e.shadowRoot.querySelector('.error').textContent,
    ink: (() => {
      const c = e.shadowRoot.querySelectorAll('canvas')[1];
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lo = 255, hi = 0;
      for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
      return hi - lo;
    })(),
  })));
  for (const s of states) {
    assert.equal(s.state, 'done', s.error);
    assert.ok(s.ink > 0, 'an embed drew a blank image');
  }
  // One app worker for every embed (plus the SIMD backend's GEMM helpers).
  assert.equal(workers.filter((u) => !u.endsWith('/simd_thread.js')).length, 1, `workers: ${workers}`);
  assert.equal(w.requests.filter((u) => u.includes('.safetensors')).length, 1, 'one weights download for the whole page');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'embed-1280x800');
  await page.setViewportSize(PHONE);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'embed-390x844');
  t.diagnostic('screenshots: dist/screenshots/embed-*.png');
  await ctx.close();
  assertClean(w);
});

test('app screenshots at phone and desktop sizes (default model)', { skip }, async (t) => {
  for (const [vp, name] of [[DESKTOP, 'app-1280x800'], [PHONE, 'app-390x844']]) {
    const ctx = await gpuBrowser.newContext({ viewport: vp });
    const w = watch(ctx, origin());
    const page = await openApp(ctx, '?sampler=ddim&steps=6&seed=3&class=3&batch=4');
    await waitSampled(page);
    await shot(page, name);
    await ctx.close();
    assertClean(w);
  }
  t.diagnostic('screenshots: dist/screenshots/app-*.png');
});

test('keyboard only: settings and Sample work from the keyboard; seed interpolation morphs between two seeds', { skip }, async () => {
  const ctx = await plainBrowser.newContext({ viewport: PHONE });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny');
  await page.focus('#steps');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('2');
  await page.keyboard.press('Tab'); // η
  await page.keyboard.press('Tab'); // σ spacing
  await page.keyboard.press('Tab'); // ρ of the spacing
  await page.keyboard.press('Tab'); // timestep spacing
  await page.keyboard.press('Tab'); // clip x̂0
  await page.keyboard.press('Tab'); // seed
  await page.keyboard.press('Control+A');
  await page.keyboard.type('77');
  await page.keyboard.press('Enter'); // submits the form
  await waitSampled(page);
  assert.equal(await page.getByLabel('Seed', { exact: true }).inputValue(), '77');
  assert.match(page.url(), /seed=77/);
  // Every control has an accessible name.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
    .filter((e) => !e.closest('[hidden]') && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
    .map((e) => e.id || e.outerHTML.slice(0, 60)));
  assert.deepEqual(unnamed, [], 'controls without a label');

  await page.getByLabel('To seed').fill('78');
  await page.getByLabel('Frames').fill('3');
  await page.getByRole('button', { name: 'Interpolate' }).click();
  await page.waitForFunction(() => /Done|Failed/.test(document.getElementById('interp-status').textContent), null, { timeout: 120000 });
  assert.match(await page.textContent('#interp-status'), /Done: 3 frames/);
  assert.equal(await page.locator('#interp-strip canvas').count(), 3);
  await ctx.close();
  assertClean(w);
});

test('2-D toy model (when shipped): a particle cloud, and the score field from the API', { skip }, async (t) => {
  const man = JSON.parse(fs.readFileSync(path.join(site, 'weights', 'manifest.json'), 'utf8'));
  const toy = man.models.find((m) => m.shape[1] === 1 && m.shape[2] === 1);
  if (!toy) { t.skip('no 2-D model in weights/'); return; }
  const ctx = await plainBrowser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, `?model=${toy.name}&sampler=ddim&steps=8&seed=1`);
  await waitSampled(page);
  assert.equal(await page.getByLabel('Batch size').inputValue(), '512', 'point models sample clouds');
  assert.equal(await page.isVisible('#show-field'), true);
  assert.deepEqual(await page.evaluate(() => [document.getElementById('xt').width, document.getElementById('xt').height]), [320, 320]);
  const field = await page.evaluate(async (name) => {
    const { createSampler } = await import('/web/diffuse.js');
    const s = await createSampler({ backend: 'cpu' });
    const m = await s.loadModel(name);
    const xs = new Float32Array([0, 0, 1, -1, 2, 2]);
    const x0 = await s.field(m, { t: 500, alpha: 0.28, sigma: 0.96, level: 3.4 }, xs);
    s.dispose();
    return Array.from(x0);
  }, toy.name);
  assert.equal(field.length, 6);
  assert.ok(field.every(Number.isFinite));
  await ctx.close();
  assertClean(w);
});

test('update: a new build waits, the page keeps its old files, and switches when asked', { skip }, async () => {
  const ctx = await plainBrowser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny');
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 60000, polling: 250 });
  const appJs = path.join(site, 'web', 'app.js');
  const original = fs.readFileSync(appJs, 'utf8');
  try {
    fs.appendFileSync(appJs, '\n// build B\n');
    rebuildServiceWorker(site);
    await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
    await page.waitForSelector('#update:not([hidden])', { timeout: 60000 });
    const served = await page.evaluate(async () => (await (await fetch('web/app.js')).text()).includes('// build B'));
    assert.equal(served, false, 'the waiting build leaked a file into the open page');
    await Promise.all([page.waitForEvent('load', { timeout: 60000 }), page.click('#update-reload')]);
    await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 60000 });
    assert.ok(await page.evaluate(async () => (await (await fetch('web/app.js')).text()).includes('// build B')), 'the new build is served after the switch');
    const shells = await page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('diffuse-shell-')));
    assert.equal(shells.length, 1, `old shell caches kept: ${shells}`);
  } finally {
    fs.writeFileSync(appJs, original);
    rebuildServiceWorker(site);
  }
  await ctx.close();
  assertClean(w);
});
