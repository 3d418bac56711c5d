// Every lab mode (web/modes.js) in the page on the shipped picture models
// besides MNIST (modes.test.mjs): ScoreNet (VE SDE) and emoji (RGB, drawn
// with the colour pen), on the CPU backend. Screenshots:
// dist/screenshots/modes-sdedit-NAME.png, modes-likelihood-NAME.png.
//
// Run: make dist && cd web && node --test --test-concurrency=1 --test-timeout=600000 test/e2e/modes-models.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildSite, startServer, launch, shot, cleanup, openLab, runLab, setStrength, ROOT } from './harness.mjs';

let server = null;
let browser = null;
const skip = !fs.existsSync(path.join(ROOT, 'weights', 'mnist.safetensors')) ? 'weights/mnist.safetensors not found' : false;

before(async () => {
  if (skip) return;
  const site = buildSite();
  if (!site) throw new Error('the test site could not be built (fixtures missing?)');
  server = await startServer(site);
  browser = await launch(false);
});

after(async () => {
  await browser?.close();
  server?.close();
  cleanup();
});

// The other shipped picture models (the 2-D toys have no pictures): each
// mode runs in the page; inpainting keeps the known pixels exactly, SDEdit
// changes the picture, bits/dim is a positive finite number. The emoji
// model's picture is drawn with the colour pen.
const OTHER_MODELS = ['scoresde-mnist', 'emoji'];

test('every mode on the other shipped picture models', { skip }, async () => {
  for (const name of OTHER_MODELS) {
    if (!fs.existsSync(path.join(ROOT, 'weights', `${name}.safetensors`))) continue;
    const { ctx, page, w } = await openLab(browser, server.url, `model=${name}&sampler=ddim&steps=10&seed=3&batch=1&backend=cpu`);
    await page.click('#mode-use-sample');
    const inv = await runLab(page, 'invert');
    console.log(`${name}: ${inv.status}`);
    assert.ok(Number.isFinite(+inv.rmse), `${name}: inversion RMSE ${inv.rmse}`);
    if (name === 'emoji') {
      assert.equal(await page.locator('#mode-color').isVisible(), true, 'no pen colour on an RGB model');
      await page.locator('#mode-color').fill('#20c040');
      const box = await page.locator('#mode-src').boundingBox();
      await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 10 });
      await page.mouse.up();
      const green = await page.evaluate(() => { const m = document.getElementById('modes').modes; const hw = m.image.length / 3;
        return m.image[hw + 16 * 32 + 16] > m.image[16 * 32 + 16] + 0.5; });
      assert.ok(green, 'the stroke is not the pen colour');
    }
    await setStrength(page, 0.6);
    const sd = await runLab(page, 'sdedit');
    assert.ok(+sd.rmse > 0.01, `${name}: SDEdit changed nothing (${sd.rmse})`);
    await page.locator('#modes').scrollIntoViewIfNeeded();
    await shot(page, `modes-sdedit-${name}`);
    await page.selectOption('#mode', 'inpaint');
    await page.check('#mode-paint-mask');
    const box = await page.locator('#mode-src').boundingBox();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.05);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.95, { steps: 12 });
    await page.mouse.up();
    await page.uncheck('#mode-paint-mask');
    const inp = await runLab(page, 'inpaint');
    assert.ok(+inp.kept <= 1e-6, `${name}: inpainting changed the kept pixels by ${inp.kept}`);
    assert.ok(+inp.rmse > 0, `${name}: inpainting changed nothing`);
    const lik = await runLab(page, 'likelihood');
    console.log(`${name}: ${lik.status}`);
    assert.ok(+lik.bpd > 0 && Number.isFinite(+lik.bpd), `${name}: bits/dim ${lik.bpd}`);
    await page.locator('#modes').scrollIntoViewIfNeeded();
    await shot(page, `modes-likelihood-${name}`);
    assert.deepEqual(w.errors.filter((e) => !/Failed to load resource/.test(e)), [], `${name}: console errors`);
    await ctx.close();
  }
});

