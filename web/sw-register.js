// Registers the site's service worker (dist/sw.js, next to index.html) once a
// page has what it needs, and tells the page when a new build is waiting.
// The pages call it after their first model has loaded (the app after its
// first image, so that the install does not take CPU from the first run), so
// the install step finds the weights already cached instead of downloading
// them a second time.

let registered = false;
let userAsked = false;

/** Registers ../sw.js. onUpdate(registration) is called when a new build is
 * installed and waiting; post {type:'skipWaiting'} to registration.waiting
 * to switch (the page then reloads once). */
export function registerServiceWorker(onUpdate) {
  if (registered || !('serviceWorker' in navigator)) return;
  registered = true;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    // A first install claims the page: nothing to reload. An update the user
    // asked for: reload once so every file comes from the new build.
    if (userAsked) {
      userAsked = false;
      location.reload();
    }
  });
  const notify = (reg) => {
    if (!onUpdate || !navigator.serviceWorker.controller) return;
    onUpdate({
      get waiting() { return reg.waiting; },
      activate() { userAsked = true; reg.waiting?.postMessage({ type: 'skipWaiting' }); },
    });
  };
  navigator.serviceWorker.register(new URL('../sw.js', import.meta.url)).then((reg) => {
    if (reg.waiting) notify(reg);
    reg.addEventListener('updatefound', () => {
      const w = reg.installing;
      if (!w) return;
      w.addEventListener('statechange', () => {
        if (w.state === 'installed') notify(reg);
      });
    });
  }, (e) => console.warn('diffuse: no offline support:', e.message));
}
