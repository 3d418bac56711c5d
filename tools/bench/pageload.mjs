// Page load to first image, phase by phase: the app's Performance marks
// ('diffuse:NAME', set by web/app.js and, through web/diffuse.js, by the
// worker and Go) on the page's timeline, read after body[data-state=done].
//
// make bench uses measureLoad (run.mjs, step 3). Alone, it compares builds:
//
//   node tools/bench/pageload.mjs [-runs N] [-url QUERY] [-json FILE] SITE [SITE...]
//
// serves each built site (make dist DIST=SITE) with tools/serve and loads
// the app N times per site in turns (A B A B ...), cold then warm (coldWarm:
// a new browser profile, then a new browser on that profile). It prints the median time of each phase since navigation start
// (min–max), per site, cold and warm, and with -json writes every load's
// marks to FILE. QUERY defaults to the plain page (the first visit: the
// default model and settings).
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');

/** The phases of a page load, in the order a first visit meets them: the
 * mark's name and what happened by then. web/app.js, web/worker.js and
 * wasm/app set them; the bench smoke run (make test-bench-smoke) fails when
 * one goes unreported. Side by side since 2026-12-08, so the times need not
 * grow down the list (the weights arrive while diffuse.wasm compiles). */
export const PHASES = [
  ['app-start', 'page and its scripts loaded (app.js runs)'],
  ['worker-start', 'worker started'],
  ['gpu-probed', 'WebGPU adapter asked for'],
  ['wasm-fetched', 'diffuse.wasm downloaded'],
  ['simd-ready', 'SIMD kernels compiled and warmed up'],
  ['wasm-compiled', 'diffuse.wasm compiled and instantiated'],
  ['go-ready', 'Go runtime started'],
  ['weights-fetched', 'weights downloaded (or read from the cache)'],
  ['weights-verified', 'weights checked (SHA-256) and parsed'],
  ['backend-chosen', 'backend chosen and built (calibration when WebGPU is real)'],
  ['sample-start', 'first run started'],
  ['first-step', 'first step drawn'],
  ['first-image', 'first image drawn'],
];

const DONE_WATCH = `
  window.__bench = { done: null, error: null };
  new MutationObserver(() => {
    const s = document.body && document.body.dataset.state;
    if (s === 'done' && window.__bench.done == null) window.__bench.done = performance.now();
    if (s === 'error' && window.__bench.error == null) window.__bench.error = (document.querySelector('[role=alert]') || {}).textContent || 'error';
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
`;

/** Prepares a browser context for measureLoad (once per context). */
export async function watchContext(ctx) {
  await ctx.addInitScript(DONE_WATCH);
}

/** Loads url in page (of a context prepared by watchContext) and waits for
 * the first finished image. Resolves to {ms, used, sw, marks: {name: ms
 * since navigation start}}; throws on the app's error. */
export async function measureLoad(page, url, { timeout = 300000 } = {}) {
  await page.goto(url);
  await page.waitForFunction(() => window.__bench.done != null || window.__bench.error != null, null, { timeout, polling: 50 });
  const b = await page.evaluate(() => ({
    ...window.__bench,
    used: document.getElementById('stat-backend')?.textContent,
    sw: !!navigator.serviceWorker?.controller,
    // (In time order, reversed: a mark set twice, by a second model's load,
    // keeps its first time.)
    marks: Object.fromEntries(performance.getEntriesByType('mark').filter((m) => m.name.startsWith('diffuse:'))
      .reverse().map((m) => [m.name.slice('diffuse:'.length), m.startTime])),
  }));
  if (b.error) throw new Error(b.error);
  return { ms: b.done, used: b.used, sw: b.sw, marks: b.marks };
}

/** The phases missing from marks (names of PHASES). */
export function missingPhases(marks) {
  return PHASES.map(([n]) => n).filter((n) => !(marks && Number.isFinite(marks[n])));
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };

/** Summarises loads (results of measureLoad) per phase: {name: {median,
 * min, max, n}}. */
export function summarise(loads) {
  const out = {};
  for (const [name] of [...PHASES, ['total']]) {
    const xs = loads.map((l) => (name === 'total' ? l.ms : l.marks?.[name])).filter(Number.isFinite);
    if (xs.length) out[name] = { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
  }
  return out;
}

const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const cell = (s) => (s ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : '–');

/** A markdown table of summaries: columns {label: summarise(...)}. */
export function phaseTable(columns) {
  const labels = Object.keys(columns);
  const L = [`| phase (time since navigation start) | ${labels.join(' | ')} |`, `|---|${labels.map(() => '---').join('|')}|`];
  for (const [name, what] of PHASES) L.push(`| ${name}: ${what} | ${labels.map((l) => cell(columns[l][name])).join(' | ')} |`);
  L.push(`| **first image** (body data-state=done) | ${labels.map((l) => `**${cell(columns[l].total)}**`).join(' | ')} |`);
  return L.join('\n');
}

// ---------- cold and warm ----------

export const FLAGS = ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-default-apps', '--disable-domain-reliability', '--no-pings'];

/** A first visit and a return visit of url, as a visitor makes them: a
 * browser with a new profile ("cold": empty HTTP cache, no service worker,
 * no compiled code), closed once the service worker controls the page, then
 * a new browser on the same profile ("warm": the service worker, Cache
 * Storage and the code cache, and nothing in memory). hooks: setup(ctx,
 * cache) before the load, after(page, cache, result) once it is measured
 * (the service worker's install is waited for after that on the cold
 * load). Resolves to {cold, warm}: measureLoad's results, or {error}. */
export async function coldWarm(chromium, url, { executablePath = process.env.CHROMIUM || '/usr/bin/chromium', args = FLAGS, setup, after } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'diffuse-pageload-'));
  const out = {};
  try {
    for (const cache of ['cold', 'warm']) {
      const ctx = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args });
      try {
        await watchContext(ctx);
        if (setup) await setup(ctx, cache);
        const page = ctx.pages()[0] || await ctx.newPage();
        try {
          out[cache] = await measureLoad(page, url);
          if (after) await after(page, cache, out[cache]);
        } catch (e) {
          out[cache] = { error: String(e.message || e).split('\n')[0] };
        }
        // The service worker installs once the model has loaded; the warm
        // load needs it in control (and its caches written).
        if (cache === 'cold') await page.waitForFunction(() => !!navigator.serviceWorker?.controller, null, { timeout: 60000, polling: 100 }).catch(() => {});
      } finally {
        await ctx.close();
      }
    }
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
  return out;
}

// ---------- the command ----------

function startServe(bin, dir) {
  const p = spawn(bin, ['-dir', dir, '-addr', '127.0.0.1:0', '-quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d) => { buf += d; const nl = buf.indexOf('\n'); if (nl >= 0) resolve({ url: buf.slice(0, nl).trim().replace(/\/$/, ''), close: () => p.kill() }); });
    p.on('exit', (c) => reject(new Error(`tools/serve exited with ${c}`)));
  });
}

async function main(argv) {
  let runs = 5;
  let query = '';
  let json = '';
  const sites = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-runs') runs = Number(argv[++i]);
    else if (argv[i] === '-url') query = argv[++i];
    else if (argv[i] === '-json') json = argv[++i];
    else sites.push(path.resolve(argv[i]));
  }
  if (!sites.length || !(runs > 0)) {
    console.error('usage: node tools/bench/pageload.mjs [-runs N] [-url QUERY] [-json FILE] SITE [SITE...]');
    process.exit(2);
  }
  const require = createRequire(path.join(ROOT, 'web', 'package.json'));
  const { chromium } = require('playwright-core');
  const bin = path.join(os.tmpdir(), `diffuse-serve-${process.pid}`);
  execFileSync('go', ['build', '-o', bin, './tools/serve'], { cwd: ROOT, stdio: 'inherit' });
  const servers = await Promise.all(sites.map((s) => startServe(bin, s)));
  const loads = sites.map(() => ({ cold: [], warm: [] }));
  console.log(`machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  try {
    for (let r = 0; r < runs; r++) {
      for (let i = 0; i < sites.length; i++) {
        const res = await coldWarm(chromium, `${servers[i].url}/index.html${query ? `?${query}` : ''}`);
        for (const cache of ['cold', 'warm']) {
          const l = res[cache];
          if (l.error) { console.log(`run ${r + 1} ${path.basename(sites[i])} ${cache}: ERROR ${l.error}`); continue; }
          loads[i][cache].push(l);
          const miss = missingPhases(l.marks);
          console.log(`run ${r + 1} ${path.basename(sites[i])} ${cache}: ${fmt(l.ms)} (${l.used})${miss.length ? `; no mark for ${miss.join(', ')}` : ''}`);
        }
      }
    }
  } finally {
    for (const s of servers) s.close();
    fs.rmSync(bin, { force: true });
  }
  if (json) fs.writeFileSync(json, JSON.stringify({ machine: `${os.cpus()[0]?.model}, ${os.cpus().length} cores`, query, sites, loads }, null, 1));
  const cols = {};
  sites.forEach((s, i) => {
    cols[`${path.basename(s)} cold`] = summarise(loads[i].cold);
    cols[`${path.basename(s)} warm`] = summarise(loads[i].warm);
  });
  console.log(`\nload average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; median (min–max) of ${runs} runs\n`);
  console.log(phaseTable(cols));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1); });
}
