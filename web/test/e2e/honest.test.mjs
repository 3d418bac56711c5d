// The page says what it does (issue 18, "a page that is not always honest"):
// the final sample and its noise level at Done, steps apart from network
// calls, rk45 at browser-sized tolerances with progress and no step count in
// links or file names, one range rule for every field, another backend
// offered when WebGPU is missing, model cards rendered in the page, nothing
// cut off or overflowing, a first visit that samples by itself (a costly
// link waits), and the clip-x̂0 option.
//
// Run: make dist && cd web && node --test --test-concurrency=1 test/e2e/honest.test.mjs
// Screenshots go to dist/screenshots/honest-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildSite, startServer, launch, watch, shot, cleanup, rebuildServiceWorker, FIXTURES, SHOTS } from './harness.mjs';

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

let site = null;
let server = null;
let browser = null; // no WebGPU: the CPU backend, deterministic and quick
const skip = !fs.existsSync(path.join(FIXTURES, 'diffusers', 'mnist_cond'))
  ? `fixtures not found at ${FIXTURES} (set FIXTURES_DIR): the tests need the development models` : false;

before(async () => {
  if (skip) return;
  site = buildSite();
  // A manifest hint for dev-tiny (a card can say which samplers suit its model).
  const file = path.join(site, 'weights', 'manifest.json');
  const man = JSON.parse(fs.readFileSync(file, 'utf8'));
  man.models.find((m) => m.name === 'dev-tiny').hint = 'Random weights: any sampler shows texture, not digits.';
  fs.writeFileSync(file, JSON.stringify(man, null, 2));
  fs.rmSync(`${file}.gz`, { force: true });
  rebuildServiceWorker(site);
  server = await startServer(site);
  browser = await launch(false);
});

after(async () => {
  await browser?.close();
  server?.close();
  cleanup();
});

const origin = () => server.url;

function assertClean(w) {
  assert.deepEqual(w.foreign, [], 'requests left the origin');
  assert.deepEqual(w.csp, [], 'Content Security Policy violations');
  assert.deepEqual(w.errors.filter((e) => !/Failed to load resource/.test(e)), [], 'console errors');
}

// Every #status text and body state the page goes through (from before its scripts run).
const RECORDER = `
  window.__statuses = []; window.__states = [];
  document.addEventListener('DOMContentLoaded', () => {
    const s = document.getElementById('status');
    new MutationObserver(() => window.__statuses.push(s.textContent)).observe(s, { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => window.__states.push(document.body.dataset.state)).observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
  });
`;

/** Opens the app and waits until it has settled: the model loaded and the
 * first run (if the page started one) finished, or an error. */
async function openApp(ctx, query = '') {
  const page = await ctx.newPage();
  await page.addInitScript(RECORDER);
  await page.goto(`${origin()}/${query}`);
  await settle(page);
  return page;
}

function settle(page) {
  return page.waitForFunction(() => !document.getElementById('error').hidden ||
    (!document.getElementById('run').disabled && !['loading', 'sampling'].includes(document.body.dataset.state)),
  null, { timeout: 300000, polling: 100 });
}

async function sampleNow(page) {
  await page.getByRole('button', { name: 'Sample', exact: true }).click();
  await page.waitForFunction(() => ['done', 'error', 'invalid'].includes(document.body.dataset.state), null, { timeout: 300000 });
  return page.evaluate(() => document.body.dataset.state);
}

/** Waits two animation frames (a frame scheduled before Done would draw by then). */
function frames(page) {
  return page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

function pixels(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
  }, selector);
}

function view(page) {
  return page.evaluate(() => ({
    state: document.body.dataset.state,
    status: document.getElementById('status').textContent,
    step: document.getElementById('stat-step').textContent,
    level: document.getElementById('stat-level').textContent,
    caption: document.getElementById('xt-caption').textContent,
    lastXtThumb: document.querySelector('#strip .strip-row figure:last-child figcaption')?.textContent,
    url: location.href,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
  }));
}

test('item 2: at Done the x_t panel, its noise level and the last thumbnail are the final sample (dpmpp_2m, em, pc)', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const cases = [
    // The VE score model: its last step starts at σ = 0.0317 (end time 1e-3) and ends denoised.
    ['scoresde-mnist', 'em', '?model=scoresde-mnist&sampler=em&steps=4&seed=1'],
    ['dev-tiny', 'dpmpp_2m', '?model=dev-tiny&sampler=dpmpp_2m&steps=6&seed=2&class=1'],
    ['dev-tiny', 'pc', '?model=dev-tiny&sampler=pc&steps=5&seed=3&class=2'],
  ];
  for (const [model, sampler, query] of cases) {
    const page = await openApp(ctx, query);
    const v = await view(page);
    assert.equal(v.state, 'done', `${model}/${sampler}: ${v.status} ${v.error}`);
    await frames(page);
    const after = await view(page);
    assert.equal(after.level, '0 (final)', `${model}/${sampler}: the noise level at Done`);
    assert.match(after.caption, /final sample \(noise σ\/α = 0\)/, `${model}/${sampler}: the x_t panel's caption`);
    assert.equal(after.lastXtThumb, 'final', `${model}/${sampler}: the trajectory's last x_t thumbnail`);
    // x_t shows the result (the x̂0 panel draws it too): not the last noisy frame.
    assert.deepEqual(await pixels(page, '#xt'), await pixels(page, '#x0'), `${model}/${sampler}: x_t at Done is not the final sample`);
    assert.deepEqual(await pixels(page, '#strip .strip-row:first-child figure:last-child canvas'), await pixels(page, '#x0'),
      `${model}/${sampler}: the last thumbnail is not the final sample`);
    await shot(page, `honest-final-${sampler}`);
    await page.close();
  }
  await ctx.close();
  assertClean(w);
});

test('item 3: Heun shows steps and network calls apart (5 steps, 9 calls)', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny&sampler=heun&steps=5&seed=4&class=3');
  const v = await view(page);
  assert.equal(v.state, 'done', v.error);
  assert.equal(v.step, 'step 5/5 · 9 network calls');
  assert.match(v.status, /^Done: 5 steps, 9 network calls in /);
  const during = await page.evaluate(() => window.__statuses.filter((s) => s.startsWith('Sampling: step')));
  assert.ok(during.some((s) => /step 5 of 5 · 9 network calls/.test(s)), `statuses while sampling: ${during}`);
  assert.ok(during.every((s) => !/of 9\b/.test(s)), 'a status counts network calls as steps');
  await ctx.close();
  assertClean(w);
});

test('item 4: rk45 starts at rtol = atol = 1e-3, shows its progress, and puts no step count in the link or the PNG name', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny');
  await page.getByLabel('Sampler', { exact: true }).selectOption('rk45');
  assert.equal(await page.getByLabel('Relative tolerance').inputValue(), '0.001');
  assert.equal(await page.getByLabel('Absolute tolerance').inputValue(), '0.001');
  assert.equal(await page.isDisabled('#steps'), true, 'rk45 chooses its own steps');
  assert.equal(await sampleNow(page), 'done', await page.textContent('#error'));
  const v = await view(page);
  assert.match(v.step, /^\d+ adaptive steps? · \d+ network calls?$/, v.step);
  assert.doesNotMatch(v.url, /[?&]steps=/, `the link has a step count: ${v.url}`);
  assert.match(v.url, /rtol=0\.001/);
  const statuses = await page.evaluate(() => window.__statuses);
  assert.ok(statuses.some((s) => /^Sampling: step \d+ \(rk45 picks its steps\) · \d+ network calls? · \d+%/.test(s)), `progress while sampling: ${statuses}`);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download PNG' }).click()]);
  assert.match(dl.suggestedFilename(), /^dev-tiny-rk45-seed\d+-class\d+\.png$/);
  // A fixed-grid sampler keeps its step count in both.
  await page.getByLabel('Sampler', { exact: true }).selectOption('ddim');
  await page.getByLabel('Steps', { exact: true }).fill('3');
  assert.equal(await sampleNow(page), 'done');
  const [dl2] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download PNG' }).click()]);
  assert.match(dl2.suggestedFilename(), /^dev-tiny-ddim-3steps-seed/);
  assert.match(page.url(), /[?&]steps=3/);
  await ctx.close();
  assertClean(w);
});

test('item 5: out-of-range values get an inline message and are not run, whichever the field', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny&sampler=ddim&steps=2&seed=1&class=1');
  const runs = async () => page.evaluate(() => window.__states.filter((s) => s === 'sampling').length);
  const cases = [
    ['Steps', '0', 'steps', 'Steps: 0 is outside 1…1000.'],
    ['Steps', '5000', 'steps', 'Steps: 5000 is outside 1…1000.'],
    ['Steps', '2.5', 'steps', 'Steps: 2.5 is not a whole number; enter a whole number in 1…1000.'],
    ['Batch size', '100', 'batch', 'Batch size: 100 is outside 1…16.'],
    ['Seed', '-5', 'seed', 'Seed: -5 is outside 0…9007199254740991.'],
    ['Guidance scale', '50', 'guidance', 'Guidance scale: 50 is outside 0…20.'],
    ['η (eta)', '2', 'param-eta', 'η (eta): 2 is outside 0…1.'],
  ];
  for (const [label, value, id, msg] of cases) {
    const before = await runs();
    const input = page.getByLabel(label, { exact: true });
    const good = await input.inputValue();
    await input.fill(value);
    // The message shows as soon as the value is typed …
    assert.equal(await page.textContent(`#${id}-error`), msg);
    // … and Sample runs nothing.
    assert.equal(await sampleNow(page), 'invalid', `${label} = ${value} ran`);
    assert.equal(await runs(), before, `${label} = ${value} started a run`);
    assert.equal(await input.inputValue(), value, 'the field keeps what was typed');
    assert.equal(await input.getAttribute('aria-invalid'), 'true');
    assert.match(await page.textContent('#status'), new RegExp(`^Not run: ${msg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    await shot(page, `honest-range-${id}`);
    await input.fill(good);
    assert.equal(await page.locator(`#${id}-error`).count(), 0, 'the message goes once the value is fine');
  }
  assert.equal(await sampleNow(page), 'done');
  // The interpolation's own fields follow the same rule (they were clamped silently).
  await page.getByLabel('Frames').fill('40');
  assert.equal(await page.textContent('#interp-frames-error'), 'Frames: 40 is outside 3…32.');
  await page.getByRole('button', { name: 'Interpolate' }).click();
  assert.equal(await page.textContent('#interp-status'), 'Not run: Frames: 40 is outside 3…32.');
  assert.equal(await page.isVisible('.interp-view'), false, 'the interpolation ran');
  await page.getByLabel('Frames').fill('3');
  // A link with a value out of range opens with the message, and runs nothing.
  const bad = await openApp(ctx, '?model=dev-tiny&sampler=ddim&steps=0&seed=1&class=1');
  assert.equal(await bad.evaluate(() => document.body.dataset.state), 'invalid');
  assert.equal(await bad.inputValue('#steps'), '0');
  assert.equal(await bad.textContent('#steps-error'), 'Steps: 0 is outside 1…1000.');
  assert.equal(await bad.evaluate(() => window.__states.includes('sampling')), false, 'a link with steps=0 was run');
  await ctx.close();
  assertClean(w);
});

test('item 6: WebGPU missing: the page says the backend is the problem and offers the CPU', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny&backend=webgpu');
  const v = await view(page);
  assert.match(v.error, /cannot run on WebGPU here/);
  assert.doesNotMatch(v.status, /Pick another model/);
  assert.match(v.status, /WebGPU is not available in this browser/);
  await shot(page, 'honest-webgpu-missing');
  await page.getByRole('button', { name: 'Use the CPU' }).click();
  await page.waitForFunction(() => !document.getElementById('run').disabled && document.body.dataset.state === 'ready', null, { timeout: 120000 });
  assert.equal(await page.inputValue('#backend'), 'cpu');
  assert.equal(await page.isVisible('#error'), false);
  assert.equal(await sampleNow(page), 'done');
  assert.match(page.url(), /backend=cpu/);
  await ctx.close();
  assertClean(w);
});

test('item 8: a model card opens in the page, rendered (tables, code, its pictures), and markup in a card stays text', { skip }, async () => {
  for (const [vp, name] of [[DESKTOP, '1280x800'], [PHONE, '390x844']]) {
    const ctx = await browser.newContext({ viewport: vp });
    const w = watch(ctx, origin());
    const page = await openApp(ctx, '?model=mnist');
    await page.locator('#model-info').getByRole('link', { name: 'Model card' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await page.waitForFunction(() => {
      const img = document.querySelector('#card-body img');
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 60000 });
    const card = await page.evaluate(() => {
      const b = document.getElementById('card-body');
      return {
        url: location.href,
        h: [...b.querySelectorAll('h2, h3')].map((e) => e.textContent),
        rows: b.querySelectorAll('table tr').length,
        pre: b.querySelectorAll('pre code').length,
        img: [...b.querySelectorAll('img')].map((i) => ({ src: i.src, w: i.naturalWidth, alt: i.alt })),
        strong: b.querySelectorAll('strong').length,
        text: b.textContent,
      };
    });
    assert.match(card.url, /\/\?model=mnist|\/\?model=mnist&/, 'the page did not navigate to the .md file');
    assert.match(card.h[0], /^mnist\.safetensors — class-conditional MNIST/);
    assert.ok(card.h.includes('Quality') && card.h.includes('Samples'), `headings ${card.h}`);
    assert.ok(card.rows >= 10, `table rows: ${card.rows}`);
    assert.ok(card.pre >= 1 && card.strong >= 1);
    assert.ok(card.img.some((i) => i.src.endsWith('/weights/mnist-samples.png') && i.w > 0), JSON.stringify(card.img));
    assert.doesNotMatch(card.text, /\|---|\*\*|!\[/, 'raw markdown shows');
    await shot(page, `honest-card-${name}`);
    await page.keyboard.press('Escape');
    assert.equal(await dialog.isVisible(), false);
    await ctx.close();
    assertClean(w);
  }
  // Hostile markup in a card: shown as text, nothing runs, nothing from another origin.
  const ctx = await browser.newContext();
  const w = watch(ctx, origin());
  const page = await ctx.newPage();
  await page.goto(`${origin()}/web/embed-demo.html#nothing`, { waitUntil: 'domcontentloaded' });
  const r = await page.evaluate(async () => {
    const { renderMarkdown } = await import('/web/render.js');
    window.__pwned = 0;
    const md = [
      '# Title <script>window.__pwned++</script>',
      '<img src=x onerror="window.__pwned++">',
      '[click](javascript:window.__pwned++) and [ok](https://example.org/a) and [rel](other.md)',
      '![far](https://example.org/x.png) ![near](mnist-samples.png)',
      '| a | b |', '|---|---|', '| `x|y` | <b>bold?</b> |',
      '```', '<iframe src="https://example.org"></iframe>', '```',
      '- one **two** *three*', '- `code` snake_case_name',
      '', 'a `multi', 'line` span',
      '', '<!-- quality:mnist -->', '| c | d |', '|---|---|', '| 1 | 2 |', '<!-- /quality:mnist -->',
      'after <!-- inline --> text',
    ].join('\n');
    const div = document.createElement('div');
    div.append(renderMarkdown(md, { base: new URL('/weights/mnist.md', location.href).href }));
    document.body.append(div);
    await new Promise((res) => setTimeout(res, 300));
    return {
      pwned: window.__pwned,
      tags: [...div.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()),
      links: [...div.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      imgs: [...div.querySelectorAll('img')].map((i) => i.getAttribute('src')),
      text: div.textContent,
      cell: div.querySelector('td code')?.textContent,
      li: [...div.querySelectorAll('li')].map((l) => l.innerHTML),
      codes: [...div.querySelectorAll('p code')].map((c) => c.textContent),
      tables: div.querySelectorAll('table').length,
    };
  });
  assert.equal(r.pwned, 0, 'markup in a card ran');
  for (const t of ['script', 'iframe', 'b']) assert.ok(!r.tags.includes(t), `a <${t}> element was made`);
  assert.deepEqual(r.links, ['https://example.org/a', `${origin()}/weights/other.md`, 'https://example.org/x.png']);
  assert.deepEqual(r.imgs, [`${origin()}/weights/mnist-samples.png`], 'only same-origin images are loaded');
  assert.match(r.text, /<script>window.__pwned\+\+<\/script>/);
  assert.match(r.text, /<img src=x onerror=/);
  assert.match(r.text, /<iframe src=/);
  assert.equal(r.cell, 'x|y');
  assert.deepEqual(r.li, ['one <strong>two</strong> <em>three</em>', '<code>code</code> snake_case_name']);
  assert.deepEqual(r.codes, ['multi line'], 'a code span over a line break');
  assert.ok(!r.text.includes('quality:mnist'), 'a whole-line HTML comment was shown');
  assert.match(r.text, /after <!-- inline --> text/, 'a comment inside a line is text');
  assert.equal(r.tables, 2, 'the table between comment lines');
  await ctx.close();
  assert.deepEqual(w.foreign, [], 'the renderer fetched from another origin');
});

/** Widest text of a select's options vs the room its box has for text. */
function selectFit(page, selector) {
  return page.evaluate((sel) => {
    const s = document.querySelector(sel);
    const cs = getComputedStyle(s);
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const room = s.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 20; // the arrow
    const widest = Math.max(...[...s.options].map((o) => ctx.measureText(o.textContent).width));
    return { room, widest, texts: [...s.options].map((o) => o.textContent) };
  }, selector);
}

test('item 9: nothing cut off or overflowing at phone and desktop sizes: model picker, embed code, trajectory strip', { skip }, async () => {
  for (const vp of [DESKTOP, PHONE]) {
    const ctx = await browser.newContext({ viewport: vp });
    const w = watch(ctx, origin());
    const page = await openApp(ctx, '?model=mnist&sampler=ddim&steps=10&seed=5&class=3&batch=4');
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'done');
    const fit = await selectFit(page, '#model');
    assert.ok(fit.widest <= fit.room, `model names cut off at ${vp.width}px: ${fit.widest} px of text in ${fit.room} px (${fit.texts})`);
    const over = await page.evaluate(() => ({
      strip: [document.getElementById('strip').scrollWidth, document.getElementById('strip').clientWidth],
      page: [document.documentElement.scrollWidth, window.innerWidth],
    }));
    assert.ok(over.strip[0] <= over.strip[1], `the trajectory strip overflows at ${vp.width}px: ${over.strip}`);
    assert.ok(over.page[0] <= over.page[1], `the page is wider than the screen at ${vp.width}px: ${over.page}`);
    await shot(page, `honest-app-${vp.width}x${vp.height}`);
    const embed = await ctx.newPage();
    await embed.goto(`${origin()}/web/embed-demo.html`, { waitUntil: 'domcontentloaded' });
    const pres = await embed.evaluate(() => [...document.querySelectorAll('pre')].map((p) => [p.scrollWidth, p.clientWidth, p.textContent.trim().split('\n').pop()]));
    assert.ok(pres.length >= 1);
    for (const [sw, cw, lastLine] of pres) assert.ok(sw <= cw, `the embed code is cut off at ${vp.width}px (${sw} > ${cw}): ${lastLine}`);
    assert.ok(pres.some(([, , last]) => last === '</diffusion-sampler>'));
    fs.mkdirSync(SHOTS, { recursive: true });
    await embed.locator('pre').screenshot({ path: path.join(SHOTS, `honest-embed-code-${vp.width}x${vp.height}.png`) });
    await ctx.close();
    assertClean(w);
  }
});

test('item 9: a first visit samples at once; a costly link waits for the Sample button', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: PHONE });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '');
  const v = await view(page);
  assert.equal(v.state, 'done', `a plain visit did not sample by itself: ${v.status} ${v.error}`);
  // DDIM at its first-view steps (Go's default, at most 25: the app's picker test checks the value).
  const steps = await page.inputValue('#steps');
  assert.match(v.status, new RegExp(`^Done: ${steps} steps, ${steps} network calls`));
  await shot(page, 'honest-first-visit-390x844');
  for (const [query, why] of [
    ['?model=dev-tiny&sampler=rk45&seed=3&class=1', /rk45 chooses its own steps/],
    ['?model=dev-tiny&sampler=ddim&steps=200&seed=3&class=1', /it takes 200 network calls/],
    ['?model=dev-tiny&sampler=heun&steps=60&seed=3&class=1', /it takes 119 network calls/],
    ['?model=dev-tiny&sampler=ddim&steps=5&seed=3&class=1&batch=16', /a batch of 16/],
  ]) {
    const p = await openApp(ctx, query);
    const pv = await view(p);
    assert.equal(pv.state, 'ready', `${query} ran by itself`);
    assert.match(pv.status, why);
    assert.match(pv.status, /press Sample to run it/);
    assert.equal(await p.evaluate(() => window.__states.includes('sampling')), false);
    await p.close();
  }
  await ctx.close();
  assertClean(w);
});

test('clip x̂0: a checkbox with its explanation, in the link when on, passed to the sampler', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny&sampler=euler&steps=4&seed=9&class=2');
  const box = page.getByLabel('Clip x̂0');
  assert.equal(await box.isChecked(), false, 'off by default');
  assert.match(await box.getAttribute('title'), /static thresholding, Saharia et al\. 2022 — changes the method; off by default/);
  assert.doesNotMatch(page.url(), /clipDenoised/);
  const plain = await pixels(page, '#x0');
  await box.check();
  assert.equal(await sampleNow(page), 'done');
  assert.match(page.url(), /[?&]clipDenoised=1/);
  const clipped = await pixels(page, '#x0');
  assert.notDeepEqual(clipped, plain, 'clipping x̂0 changed nothing: was it passed on?');
  // The link reproduces the clipped run.
  const again = await openApp(ctx, new URL(page.url()).search);
  assert.equal(await again.getByLabel('Clip x̂0').isChecked(), true);
  assert.deepEqual(await pixels(again, '#x0'), clipped);
  // Through the API: the option reaches the engine (euler has no clipping of its own).
  const r = await again.evaluate(async () => {
    const { createSampler } = await import('/web/diffuse.js');
    const s = await createSampler({ backend: 'cpu' });
    const m = await s.loadModel('dev-tiny');
    const o = { sampler: 'euler', steps: 4, seed: 9, class: 2 };
    const [a, b] = [await s.sample(m, o), await s.sample(m, { ...o, clipDenoised: true })];
    s.dispose();
    let d = 0;
    for (let i = 0; i < a.x.length; i++) d = Math.max(d, Math.abs(a.x[i] - b.x[i]));
    return { d, max: Math.max(...b.x.map(Math.abs)) };
  });
  assert.ok(r.d > 0, 'clipDenoised did not reach the sampler');
  assert.ok(r.max <= 1 + 1e-6, `a clipped sample leaves [-1, 1]: ${r.max}`);
  await ctx.close();
  assertClean(w);
});

test('a manifest hint is shown under the sampler picker', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny');
  assert.equal(await page.textContent('#sampler-hint'), 'Random weights: any sampler shows texture, not digits.');
  assert.equal(await page.isVisible('#sampler-hint'), true);
  await page.getByLabel('Model', { exact: true }).selectOption('dev-rgb');
  assert.equal(await page.isVisible('#sampler-hint'), false, 'a model without a hint shows none');
  await ctx.close();
  assertClean(w);
});

test('timestep spacing: one DDIM step starts at the top with trailing, at t ≈ 0 with leading; in the link; passed to the sampler', { skip }, async () => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const w = watch(ctx, origin());
  const page = await openApp(ctx, '?model=dev-tiny&sampler=ddim&steps=1&seed=4&class=1&timestepSpacing=leading');
  const sel = page.getByLabel('Timestep spacing');
  assert.equal(await sel.inputValue(), 'leading', 'the link sets the spacing');
  assert.equal(await sel.isDisabled(), false);
  // The API reports the level of each run's one network call.
  const levels = await page.evaluate(async () => {
    const { createSampler } = await import('/web/diffuse.js');
    const s = await createSampler({ backend: 'cpu' });
    const m = await s.loadModel('dev-tiny');
    const first = async (timestepSpacing) => {
      let lvl = null;
      await s.sample(m, { sampler: 'ddim', steps: 1, seed: 4, class: 1, timestepSpacing, onStep: (f) => { if (lvl === null) lvl = f.level; } });
      return lvl;
    };
    const out = { leading: await first('leading'), trailing: await first('trailing') };
    s.dispose();
    return out;
  });
  assert.ok(levels.leading < 0.1, `one leading step at σ/α ${levels.leading}, want ≈ 0.01`);
  assert.ok(levels.trailing > 100, `one trailing step at σ/α ${levels.trailing}, want the top`);
  await sel.selectOption('trailing');
  assert.equal(await sampleNow(page), 'done');
  assert.match(page.url(), /[?&]timestepSpacing=trailing/);
  // rk45 chooses its own steps: no spacing to choose.
  await page.getByLabel('Sampler', { exact: true }).selectOption('rk45');
  assert.equal(await sel.isDisabled(), true);
  await ctx.close();
  assertClean(w);
});
