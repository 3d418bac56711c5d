// The GEMM benchmark (gemm_core.js) in headless Chromium, for both kernel
// modules, on one thread and through simd_glue.js with helper threads:
// `node wasm/simd/bench/chromium.mjs [seconds] [threads]` (threads default:
// the machine's cores, at most 4). Needs playwright-core (web/node_modules)
// and Chromium (CHROMIUM, default /usr/bin/chromium). The page comes from a
// local server that sends COOP/COEP, as tools/serve does, so it is
// cross-origin isolated and may use SharedArrayBuffer. Times are wall-clock
// (a page has no CPU clock), so on a shared machine they include time other
// jobs held the cores.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const require = createRequire(here('../../../web/package.json'));
const { chromium } = require('playwright-core');

const seconds = Number(process.argv[2] || 0.5);
const threads = Number(process.argv[3] || Math.min(4, os.availableParallelism()));
const files = {
  '/gemm_core.js': here('gemm_core.js'),
  '/simd_glue.js': here('../simd_glue.js'),
  '/simd_thread.js': here('../simd_thread.js'),
};
for (const k of ['kernels', 'kernels_relaxed', 'kernels_shared', 'kernels_relaxed_shared']) files[`/${k}.wasm`] = here(`../${k}.wasm`);
const server = createServer((req, res) => {
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
  const file = files[req.url];
  if (req.url === '/') {
    res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end('<!doctype html><title>gemm</title>');
  } else if (file) {
    res.writeHead(200, { ...headers, 'Content-Type': file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' }).end(readFileSync(file));
  } else {
    res.writeHead(404, headers).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update'],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(m.text()));
  await page.goto(origin + '/');
  const isolated = await page.evaluate(() => self.crossOriginIsolated);
  console.log(`${browser.version()}, ${os.cpus().length} cores: ${os.cpus()[0]?.model ?? '?'}, load avg ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}; wall-clock times; page cross-origin isolated: ${isolated}`);
  for (const name of ['kernels', 'kernels_relaxed']) {
    for (const t of [1, threads]) {
      console.log(`\n== ${name}.wasm, ${t === 1 ? 'one thread (the kernel alone)' : `${t} threads through simd_glue.js`}`);
      await page.evaluate(async ({ name, t, seconds }) => {
        const { run } = await import('/gemm_core.js');
        const wasm = new Uint8Array(await (await fetch(`/${name}.wasm`)).arrayBuffer());
        if (!WebAssembly.validate(wasm)) { console.log('does not compile here'); return; }
        const clock = () => performance.now();
        const log = (s) => console.log(s);
        if (t === 1) { await run({ wasm, seconds, clock, log }); return; }
        const { attachSimd } = await import('/simd_glue.js');
        const shared = new Uint8Array(await (await fetch(`/${name}_shared.wasm`)).arrayBuffer());
        await run({ wasm, seconds, clock, log, glue: { attachSimd, shared, threads: t } });
      }, { name, t, seconds });
    }
  }
} finally {
  await browser.close();
  server.close();
}
