// The first visit's bytes (make test-browser; issue 18): a fresh browser
// opens the app of the built site (dist/) and samples one image; every
// response is counted, per URL, at an HTTP proxy in front of tools/serve
// (status, Content-Encoding, header and body bytes as they went over the
// wire), from navigation to the first image and then until the service
// worker has installed (its precache is part of the first visit's cost).
//
// It checks that each file is downloaded at most once (the page's worker and
// the service worker's precache must not both fetch diffuse.wasm), that
// nothing outside the page's own files is fetched (a dist/bench-smoke left
// by the bench smoke run is planted in the test's copy of the site), that
// the wasm arrives compressed, and that the model cards and the images they
// show are served; it prints the bytes to the first image and in all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, DIST, CHROMIUM, NO_WEBGPU_ARGS } from './harness.mjs';

const skip = fs.existsSync(path.join(DIST, 'sw.js')) ? false : 'dist/ is not built: run make dist';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffuse-firstvisit-'));
let site = null;
let serve = null;
let proxy = null;
let browser = null;
let log = [];

/** Builds one Go command into the test's temporary folder. */
function goBuild(pkg) {
  const out = path.join(tmp, path.basename(pkg));
  execFileSync('go', ['build', '-o', out, pkg], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

/** Starts tools/serve on a free port; resolves to its URL. */
function startServe(bin, dir) {
  const p = spawn(bin, ['-dir', dir, '-addr', '127.0.0.1:0', '-quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve({ url: new URL(buf.slice(0, nl).trim()), close: () => p.kill() });
    });
    p.on('exit', (code) => reject(new Error(`tools/serve exited with ${code}`)));
  });
}

/** An HTTP proxy in front of upstream that logs every response: URL, status,
 * Content-Encoding, header bytes (status line and headers as sent) and body
 * bytes (as sent, i.e. compressed where the server compressed). */
function startProxy(upstream) {
  const srv = http.createServer((req, res) => {
    const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      const entry = {
        url: req.url, status: ur.statusCode, encoding: ur.headers['content-encoding'] || '', type: ur.headers['content-type'] || '',
        headerBytes: 0, bodyBytes: 0, done: false,
      };
      log.push(entry);
      const raw = ur.rawHeaders;
      entry.headerBytes = `HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}\r\n`.length + 2;
      for (let i = 0; i < raw.length; i += 2) entry.headerBytes += raw[i].length + 2 + Buffer.byteLength(raw[i + 1]) + 2;
      res.writeHead(ur.statusCode, ur.statusMessage, raw);
      ur.on('data', (d) => { entry.bodyBytes += d.length; });
      ur.on('end', () => { entry.done = true; });
      ur.pipe(res);
    });
    up.on('error', (e) => { res.destroy(e); });
    req.pipe(up);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${srv.address().port}`,
    close: () => { srv.closeAllConnections(); srv.close(); },
  })));
}

before(async () => {
  if (skip) return;
  // The built site as `make dist` leaves it, without what tests and
  // benchmarks wrote into dist/, plus a leftover of the bench smoke run
  // (`make test` leaves dist/bench-smoke/), then finished by tools/manifest
  // as `make dist` finishes it.
  site = path.join(tmp, 'site');
  const ours = (src) => !/^(screenshots|bench|bench-smoke)(\/|$)/.test(path.relative(DIST, src).split(path.sep).join('/'));
  fs.cpSync(DIST, site, { recursive: true, filter: ours });
  fs.mkdirSync(path.join(site, 'bench-smoke'), { recursive: true });
  fs.writeFileSync(path.join(site, 'bench-smoke', 'bench.wasm'), Buffer.alloc(1 << 20, 7));
  fs.writeFileSync(path.join(site, 'bench-smoke', 'bench-smoke.md'), '# leftover\n');
  const def = JSON.parse(fs.readFileSync(path.join(DIST, 'weights', 'manifest.json'), 'utf8')).default;
  execFileSync(goBuild('./tools/manifest'), ['-site', site, '-sw', path.join(ROOT, 'web', 'sw.js'), ...(def ? ['-default', def] : [])],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  serve = await startServe(goBuild('./tools/serve'), site);
  proxy = await startProxy(serve.url);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: NO_WEBGPU_ARGS });
});

after(async () => {
  await browser?.close();
  proxy?.close();
  serve?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
const total = (entries) => entries.reduce((s, e) => s + e.headerBytes + e.bodyBytes, 0);

/** Per-URL sums of a log: [{url, requests, downloads, bytes, encoding}],
 * largest first. A download is a response with a body (not a 304). */
function perURL(entries) {
  const m = new Map();
  for (const e of entries) {
    const u = m.get(e.url) || { url: e.url, requests: 0, downloads: 0, bytes: 0, encoding: e.encoding, statuses: [] };
    u.requests++;
    if (e.status !== 304 && e.bodyBytes > 0) u.downloads++;
    u.bytes += e.headerBytes + e.bodyBytes;
    u.statuses.push(e.status);
    m.set(e.url, u);
  }
  return [...m.values()].sort((a, b) => b.bytes - a.bytes);
}

function table(rows) {
  return rows.map((r) => `  ${String(r.bytes).padStart(9)}  ${r.statuses.join(',').padEnd(8)} ${(r.encoding || '-').padEnd(5)} ${r.url}`).join('\n');
}

test('first visit: each file downloaded once, only the page\'s own files, the wasm compressed; bytes to the first image', { skip, timeout: 600000 }, async (t) => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  log = [];
  // The app samples on load when the URL has a seed.
  await page.goto(`${proxy.url}/?sampler=ddim&steps=2&seed=1&batch=1`);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 300000, polling: 100 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', `sampling failed: ${await page.textContent('#error')} ${errors}`);
  const toImage = log.slice();
  // The page registers the service worker once its model has loaded; it
  // controls the page once it has installed (precached the shell) and
  // activated.
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 120000, polling: 100 });
  await page.waitForTimeout(500);
  const all = log.slice();

  // Model cards and their images are not precached: the service worker
  // keeps them once they are first fetched, so a card read once reads offline.
  const man = JSON.parse(fs.readFileSync(path.join(site, 'weights', 'manifest.json'), 'utf8'));
  const card = man.models.find((m) => m.card && m.images?.length);
  if (card) {
    const files = [card.card, ...card.images].map((f) => `weights/${f}`);
    const sizes = (urls) => page.evaluate((urls) => Promise.all(urls.map(async (u) => {
      try { const r = await fetch(u); return r.ok ? (await r.arrayBuffer()).byteLength : -r.status; } catch { return 'failed'; }
    })), urls);
    const online = await sizes(files);
    await ctx.setOffline(true);
    assert.deepEqual(await sizes(files), online, `${files} offline, once read`);
    await ctx.setOffline(false);
  }
  await ctx.close();

  const rows = perURL(all);
  t.diagnostic(`bytes to the first image: ${mb(total(toImage))} in ${toImage.length} responses; ` +
    `first visit in all (with the service worker's precache): ${mb(total(all))} in ${all.length} responses`);
  t.diagnostic('per URL (bytes with headers, statuses, Content-Encoding):');
  for (const line of table(rows).split('\n')) t.diagnostic(line);

  const twice = rows.filter((r) => r.downloads > 1).map((r) => `${r.url} (${r.downloads}×)`);
  assert.deepEqual(twice, [], 'files downloaded more than once on the first visit');
  const foreign = rows.filter((r) => !/^\/(\?|$|index\.html|sw\.js|web\/[^/]+$|weights\/[^/]+$)/.test(r.url)).map((r) => r.url);
  assert.deepEqual(foreign, [], 'fetched files that are not the page\'s own (e.g. dist/bench-smoke)');
  const wasm = all.filter((e) => e.url === '/web/diffuse.wasm');
  assert.equal(wasm.length, 1, 'diffuse.wasm requested once');
  const size = fs.statSync(path.join(site, 'web', 'diffuse.wasm')).size;
  assert.match(wasm[0].encoding, /^(gzip|br)$/, 'diffuse.wasm must arrive compressed');
  assert.ok(wasm[0].bodyBytes < 0.4 * size, `diffuse.wasm: ${wasm[0].bodyBytes} bytes sent for ${size}`);
  assert.equal(wasm[0].type, 'application/wasm');
});

test('model cards: each card and the images it shows are served, with their types', { skip }, async () => {
  const man = JSON.parse(fs.readFileSync(path.join(site, 'weights', 'manifest.json'), 'utf8'));
  const cards = man.models.filter((m) => m.card);
  for (const m of cards) {
    const r = await fetch(`${serve.url.origin}/weights/${m.card}`);
    assert.equal(r.status, 200, m.card);
    assert.equal(r.headers.get('content-type'), 'text/markdown; charset=utf-8', m.card);
    const text = await r.text();
    const refs = [...text.matchAll(/!\[[^\]]*\]\(([^)\s]+)/g)].map((x) => x[1]).filter((u) => !/^[a-z]+:/i.test(u));
    assert.deepEqual([...(m.images || [])].sort(), [...new Set(refs)].sort(), `${m.card}: the manifest's images are the card's`);
    for (const ref of refs) {
      const ir = await fetch(new URL(ref, `${serve.url.origin}/weights/`));
      assert.equal(ir.status, 200, `${m.card}: ${ref}`);
      assert.equal(ir.headers.get('content-type'), 'image/png', `${m.card}: ${ref}`);
      await ir.arrayBuffer();
    }
  }
});
