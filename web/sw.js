// The service worker: after one visit the site works offline.
//
// This file is a template: `make dist` (tools/manifest) writes it to
// dist/sw.js with the BUILD line filled in: the build's version (a hash of
// every file it lists), the app shell (index.html, every file in web/: pages,
// scripts, styles, the wasm, wasm_exec.js; the weights manifest), the files
// cached only once fetched (model cards and their images), the SHA-256 of
// each of these, and the weights URLs (each carries its SHA-256, so a URL
// always names the same bytes). Nothing else under dist/ is ever fetched.
//
// Caches: 'diffuse-shell-<version>' holds one build's shell, complete; it is
// filled at install and only deleted when a newer build activates, and pages
// are served from the cache of the worker that controls them, so a page never
// mixes files of two builds. A new build waits until the page asks for it
// (the "new version" banner) or until no page of the old one is open.
// 'diffuse-weights-v1' holds verified weights (the page's worker adds the
// models it loads; install adds the default one) and drops files no longer
// in the manifest.
//
// One download per file: the page registers this worker after its first
// model has loaded (the app: after its first image), so by install time the browser's HTTP cache already
// holds the files the page fetched (diffuse.wasm above all). Install takes
// each file from there when its SHA-256 is this build's and downloads only
// the others; a copy of another build is revalidated with the server.
const BUILD = { version: 'dev', shell: [], lazy: [], sha256: {}, weights: [] };

const SHELL_CACHE = `diffuse-shell-${BUILD.version}`;
const WEIGHTS_CACHE = 'diffuse-weights-v1';
const abs = (p) => new URL(p, self.location).href;
const SHELL = new Set(BUILD.shell.map((p) => new URL(abs(p)).pathname));
const LAZY = new Map(BUILD.lazy.map((p) => [new URL(abs(p)).pathname, p]));
const INDEX = abs('index.html');

async function sha256Hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Whether a response's body has the SHA-256 this build lists for path. */
async function isBuilds(resp, path) {
  const want = BUILD.sha256[path];
  return !!want && resp.ok && (await sha256Hex(await resp.clone().arrayBuffer())) === want;
}

/** One shell file of this build: from the HTTP cache when the copy there is
 * this build's (no request at all), else from the network. */
async function shellFile(path) {
  const url = abs(path);
  try {
    const cached = await fetch(url, { cache: 'force-cache' });
    if (await isBuilds(cached, path)) return cached;
  } catch {
    // not in the HTTP cache and offline: the reload below says so
  }
  // Another build's copy, or a host that rewrites files (minifiers, injected
  // scripts): the server's current copy, revalidated (a 304 when the copy
  // just fetched is it), cached as served.
  const resp = await fetch(url, { cache: 'no-cache' });
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp;
}

async function precacheWeights() {
  const cache = await caches.open(WEIGHTS_CACHE);
  for (const w of BUILD.weights) {
    if (!w.default) continue;
    const url = abs(w.url);
    if (await cache.match(url)) continue;
    try {
      // The page's worker has usually cached it already; else the HTTP cache
      // may hold it (the hash below checks the bytes either way).
      const resp = await fetch(url, { cache: 'force-cache' });
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
    // All or nothing, as cache.addAll: a failed file fails the install.
    const files = await Promise.all(BUILD.shell.map(async (p) => [p, await shellFile(p)]));
    await Promise.all(files.map(([p, resp]) => cache.put(abs(p), resp)));
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
  else if (SHELL.has(url.pathname) || LAZY.has(url.pathname)) key = url.origin + url.pathname; // shared links carry a query string
  if (key) {
    const hit = await shell.match(key);
    if (hit) return hit;
  }
  if (key && LAZY.has(url.pathname)) {
    // A card or its image, first asked for: kept when it is this build's.
    const resp = await fetch(request);
    if (await isBuilds(resp, LAZY.get(url.pathname))) await shell.put(key, resp.clone());
    return resp;
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
