// The service worker: after one visit the site works offline.
//
// This file is a template: `make dist` (tools/manifest) writes it to
// dist/sw.js with the BUILD line filled in: the build's version (a hash of
// every file it lists), the app shell (pages, scripts, styles, the wasm,
// wasm_exec.js, the weights manifest and model cards) and the weights URLs
// (each carries its SHA-256, so a URL always names the same bytes).
//
// Caches: 'diffuse-shell-<version>' holds one build's shell, complete; it is
// filled at install and only deleted when a newer build activates, and pages
// are served from the cache of the worker that controls them, so a page never
// mixes files of two builds. A new build waits until the page asks for it
// (the "new version" banner) or until no page of the old one is open.
// 'diffuse-weights-v1' holds verified weights (the page's worker adds the
// models it loads; install adds the default one) and drops files no longer
// in the manifest.
const BUILD = { version: 'dev', shell: [], weights: [] };

const SHELL_CACHE = `diffuse-shell-${BUILD.version}`;
const WEIGHTS_CACHE = 'diffuse-weights-v1';
const abs = (p) => new URL(p, self.location).href;
const SHELL = new Set(BUILD.shell.map((p) => new URL(abs(p)).pathname));
const INDEX = abs('index.html');

async function sha256Hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function precacheWeights() {
  const cache = await caches.open(WEIGHTS_CACHE);
  for (const w of BUILD.weights) {
    if (!w.default) continue;
    const url = abs(w.url);
    if (await cache.match(url)) continue;
    try {
      const resp = await fetch(url, { cache: 'reload' });
      if (!resp.ok) continue;
      const buf = await resp.arrayBuffer();
      if ((await sha256Hex(buf)) !== new URL(url).searchParams.get('sha256')) continue;
      await cache.put(url, new Response(buf, { headers: { 'Content-Type': 'application/octet-stream' } }));
    } catch {
      // offline during install: the page's worker caches the weights when it loads them
    }
  }
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(BUILD.shell.map((p) => new Request(abs(p), { cache: 'reload' })));
    await precacheWeights();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('diffuse-shell-') && key !== SHELL_CACHE) await caches.delete(key);
    }
    const keep = new Set(BUILD.weights.map((w) => abs(w.url)));
    const weights = await caches.open(WEIGHTS_CACHE);
    for (const req of await weights.keys()) {
      if (!keep.has(req.url)) await weights.delete(req);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'skipWaiting') self.skipWaiting();
});

async function respond(request, url) {
  if (url.pathname.endsWith('.safetensors')) {
    const hit = await (await caches.open(WEIGHTS_CACHE)).match(request.url);
    return hit || fetch(request);
  }
  const shell = await caches.open(SHELL_CACHE);
  let key = null;
  if (request.mode === 'navigate' && (url.pathname.endsWith('/') || url.href.startsWith(INDEX))) key = INDEX;
  else if (SHELL.has(url.pathname)) key = url.origin + url.pathname; // shared links carry a query string
  if (key) {
    const hit = await shell.match(key);
    if (hit) return hit;
  }
  try {
    return await fetch(request);
  } catch (e) {
    if (request.mode === 'navigate') {
      const hit = await shell.match(INDEX);
      if (hit) return hit;
    }
    throw e;
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  event.respondWith(respond(request, url));
});
