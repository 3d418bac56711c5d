// The blog demo page: say which model the demos run, and turn on offline
// support once the first demo has its model (so the service worker finds the
// weights already cached).
import { fetchManifest } from './diffuse.js';
import { registerServiceWorker } from './sw-register.js';

const note = document.getElementById('model-note');
fetchManifest().then((m) => {
  // The demos' model: the one their tags name, else the site's default.
  const named = document.querySelector('diffusion-sampler[model]')?.getAttribute('model');
  const d = m.models.find((x) => x.name === (named || m.default));
  if (!d || !note) return;
  note.append(`The demos run the model “${d.title}”. `);
  if (d.dev) note.append('It has random weights (no trained model is shipped in this build), so the pictures are textures rather than digits; the samplers behave the same.');
  if (d.cardURL) {
    const a = document.createElement('a');
    a.href = d.cardURL;
    a.textContent = 'Model card';
    note.append(' ', a, '.');
  }
}).catch(() => {});

const first = document.querySelector('diffusion-sampler');
if (first) {
  const check = () => {
    const s = first.getAttribute('state');
    if (s && s !== 'loading') {
      registerServiceWorker();
      return true;
    }
    return false;
  };
  if (!check()) {
    const mo = new MutationObserver(() => { if (check()) mo.disconnect(); });
    mo.observe(first, { attributes: true, attributeFilter: ['state'] });
  }
}
