// The GEMM benchmark (gemm_core.js) in headless Chromium, for both kernel
// modules: `node wasm/simd/bench/chromium.mjs [seconds]`. Needs
// playwright-core (web/node_modules) and Chromium (CHROMIUM, default
// /usr/bin/chromium). Times are wall-clock (a page has no CPU clock), so on
// a shared machine they include time other jobs held the core.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const require = createRequire(here('../../../web/package.json'));
const { chromium } = require('playwright-core');

const seconds = Number(process.argv[2] || 0.5);
const core = readFileSync(here('gemm_core.js'), 'utf8');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update'],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(m.text()));
  console.log(`${browser.version()}, ${os.cpus().length} cores: ${os.cpus()[0]?.model ?? '?'}, load avg ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}; wall-clock times`);
  for (const name of ['kernels.wasm', 'kernels_relaxed.wasm']) {
    const b64 = readFileSync(here(`../${name}`)).toString('base64');
    console.log(`\n== ${name}`);
    await page.evaluate(async ({ core, b64, seconds }) => {
      const { run } = await import('data:text/javascript;base64,' + btoa(core));
      const wasm = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      if (!WebAssembly.validate(wasm)) { console.log('does not compile here'); return; }
      await run({ wasm, seconds, clock: () => performance.now(), log: (s) => console.log(s) });
    }, { core: core.replace(/[^\x00-\x7f]/g, ''), b64, seconds });
  }
} finally {
  await browser.close();
}
