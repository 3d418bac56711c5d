// Shared plumbing of the browser tests: a test copy of the built site with the
// development models and two damaged weights files, the Go static server,
// headless Chromium with and without WebGPU, request and CSP watchers, and
// the native reference sampler.
import { chromium } from 'playwright-core';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DIST = path.join(ROOT, 'dist');
export const SHOTS = path.join(DIST, 'screenshots');
export const FIXTURES = process.env.FIXTURES_DIR || path.resolve(ROOT, '../shared/fixtures');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Flags: design.md's (WebGPU on SwiftShader, the software Vulkan Debian's
// chromium ships) plus no background traffic, so every request seen is the
// page's own.
const QUIET = ['--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic', '--disable-default-apps', '--disable-domain-reliability',
  '--metrics-recording-only', '--no-pings'];
export const WEBGPU_ARGS = ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', ...QUIET];
export const NO_WEBGPU_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-features=WebGPU', ...QUIET];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffuse-e2e-'));
export const TMP = tmp;

function go(args, opts = {}) {
  return execFileSync('go', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], ...opts });
}

let tools = null;
/** Builds the helper programs once: the static server, the manifest tool,
 * the native reference sampler. */
export function buildTools() {
  if (tools) return tools;
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  tools = {};
  for (const [name, pkg] of [['serve', './tools/serve'], ['manifest', './tools/manifest'], ['refsample', './wasm/app/cmd/refsample']]) {
    tools[name] = path.join(bin, name);
    go(['build', '-o', tools[name], pkg]);
  }
  // The native CLI's sampler, when it exists, is the preferred reference.
  try {
    go(['build', '-o', path.join(bin, 'diffuse'), './tools/diffuse']);
    execFileSync(path.join(bin, 'diffuse'), ['sample', '--help'], { stdio: 'ignore' });
    tools.diffuse = path.join(bin, 'diffuse');
  } catch {
    tools.diffuse = null;
  }
  return tools;
}

/** A copy of dist/ plus the development models and two damaged files:
 * dev-truncated (cut to half its size) and dev-corrupt (same size, flipped
 * bytes), both listed in the manifest with the good file's size and hash. */
export function buildSite() {
  if (!fs.existsSync(path.join(DIST, 'sw.js'))) throw new Error('dist/ is not built: run make dist');
  if (!fs.existsSync(path.join(FIXTURES, 'diffusers', 'mnist_cond'))) return null;
  const t = buildTools();
  const site = path.join(tmp, 'site');
  fs.cpSync(DIST, site, { recursive: true, filter: (src) => !src.includes(`${path.sep}screenshots`) });
  execFileSync(t.manifest, ['-site', site, '-sw', path.join(ROOT, 'web/sw.js'), '-dev-models', FIXTURES], { stdio: ['ignore', 'ignore', 'inherit'] });
  const w = path.join(site, 'weights');
  fs.copyFileSync(path.join(w, 'dev-tiny.safetensors'), path.join(w, 'dev-truncated.safetensors'));
  fs.copyFileSync(path.join(w, 'dev-tiny.safetensors'), path.join(w, 'dev-corrupt.safetensors'));
  // The built site's default model stays the default.
  const def = JSON.parse(fs.readFileSync(path.join(DIST, 'weights', 'manifest.json'), 'utf8')).default || 'dev-tiny';
  execFileSync(t.manifest, ['-site', site, '-sw', path.join(ROOT, 'web/sw.js'), '-default', def], { stdio: ['ignore', 'ignore', 'inherit'] });
  const trunc = path.join(w, 'dev-truncated.safetensors');
  fs.truncateSync(trunc, Math.floor(fs.statSync(trunc).size / 2));
  const corrupt = path.join(w, 'dev-corrupt.safetensors');
  const b = fs.readFileSync(corrupt);
  for (let i = b.length - 4096; i < b.length - 4000; i++) b[i] ^= 0x5a;
  fs.writeFileSync(corrupt, b);
  return site;
}

/** Re-runs the manifest tool on a site (after a test changed its files). */
export function rebuildServiceWorker(site) {
  execFileSync(buildTools().manifest, ['-site', site, '-sw', path.join(ROOT, 'web/sw.js'), '-sw-only'], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Starts the Go static server on a free port; resolves to {url, close}. */
export function startServer(dir) {
  const t = buildTools();
  const p = spawn(t.serve, ['-dir', dir, '-addr', '127.0.0.1:0', '-quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve({ url: buf.slice(0, nl).trim().replace(/\/$/, ''), close: () => p.kill() });
    });
    p.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

export function launch(webgpu) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: webgpu ? WEBGPU_ARGS : NO_WEBGPU_ARGS });
}

/** Records every request of a browser context (pages, workers, service
 * worker), console errors and CSP violations. */
export function watch(context, origin) {
  const w = { requests: [], foreign: [], csp: [], errors: [] };
  context.on('request', (r) => {
    const u = r.url();
    w.requests.push(u);
    if (!u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:')) w.foreign.push(u);
  });
  const onPage = (page) => {
    page.on('console', (m) => {
      const text = m.text();
      if (/Content.Security.Policy/i.test(text)) w.csp.push(text);
      if (m.type() === 'error') w.errors.push(text);
    });
    page.on('pageerror', (e) => w.errors.push(`pageerror: ${e.message}`));
  };
  context.on('page', onPage);
  for (const p of context.pages()) onPage(p);
  return w;
}

/** Reads a float32 .npy file: {shape, data}. */
export function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not an npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.toString('latin1', start, start + hlen);
  if (!header.includes("'<f4'")) throw new Error(`${file}: want float32, header ${header}`);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const off = start + hlen;
  const data = new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length));
  return { shape, data };
}

/** The native sample for a request: `diffuse sample` when the CLI has it,
 * else wasm/app/cmd/refsample (the app's engine compiled natively). */
export function nativeSample(weights, r) {
  const t = buildTools();
  const out = path.join(tmp, `ref-${Math.random().toString(36).slice(2)}.npy`);
  const args = ['--weights', weights, '--sampler', r.sampler, '--steps', String(r.steps), '--seed', String(r.seed), '--out-npy', out];
  if (r.class != null) args.push('--class', String(r.class));
  if (r.guidance) args.push('--guidance', String(r.guidance));
  if (r.eta) args.push('--eta', String(r.eta));
  const n = String(r.batch || 1);
  let via = 'diffuse sample';
  try {
    if (!t.diffuse) throw new Error('no CLI');
    // The CLI's --n is the number of samples (its --batch only chunks the work).
    execFileSync(t.diffuse, ['sample', ...args, '--n', n, '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    via = 'wasm/app/cmd/refsample';
    execFileSync(t.refsample, [...args, '--batch', n], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return { ...readNpy(out), via };
}

export function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  return page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Installs, before any page script, a long-task observer and a
 * requestAnimationFrame gap meter on window.__jank. */
export const JANK_SCRIPT = `
  window.__jank = { long: [], gaps: [], last: 0 };
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__jank.long.push({ start: e.startTime, dur: e.duration }); })
      .observe({ type: 'longtask', buffered: true });
  } catch (e) {}
  const tick = (t) => { const j = window.__jank; if (j.last) j.gaps.push({ start: j.last, dur: t - j.last }); j.last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
`;

export function cleanup() {
  fs.rmSync(tmp, { recursive: true, force: true });
}

/** Opens the app at ?query in a new context of browser b and waits until it
 * has started (a first sample done, or waiting, or refused). */
export async function openLab(b, url, query) {
  const ctx = await b.newContext({ viewport: { width: 1280, height: 900 } });
  const w = watch(ctx, url);
  const page = await ctx.newPage();
  await page.goto(`${url}/?${query}`);
  await page.waitForFunction(() => !document.getElementById('error').hidden || ['done', 'ready', 'invalid'].includes(document.body.dataset.state),
    null, { timeout: 300000, polling: 200 });
  return { ctx, page, w };
}

/** Runs the lab's mode (web/modes.js) and returns its dataset (state, rmse,
 * kept, bpd), status and first result; fails unless it finished. */
export async function runLab(page, mode) {
  await page.selectOption('#mode', mode);
  await page.evaluate(() => { delete document.getElementById('modes').dataset.state; });
  await page.click('#mode-run');
  return labDone(page);
}

/** Waits for the lab's run (one started by a click or by a link). */
export async function labDone(page) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('modes').dataset.state),
    null, { timeout: 500000, polling: 200 });
  const d = await page.evaluate(() => ({ ...document.getElementById('modes').dataset, status: document.getElementById('mode-status').textContent,
    main: document.getElementById('status').textContent, result: Array.from(document.getElementById('modes').modes.result || []) }));
  if (d.state !== 'done') throw new Error(`the lab's ${d.mode} run failed: ${d.status} / ${d.main}`);
  return d;
}

/** Drags the pointer over the lab's canvas through fractions [[x, y], …]. */
export async function dragLab(page, pts) {
  const box = await page.locator('#mode-src').boundingBox();
  await page.mouse.move(box.x + box.width * pts[0][0], box.y + box.height * pts[0][1]);
  await page.mouse.down();
  for (const [fx, fy] of pts.slice(1)) await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy, { steps: 8 });
  await page.mouse.up();
}

/** Sets the lab's SDEdit strength. */
export function setStrength(page, v) {
  return page.evaluate((v) => { const s = document.getElementById('mode-strength'); s.value = String(v); s.dispatchEvent(new Event('input')); }, v);
}
