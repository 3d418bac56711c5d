// The page's lab (issue 20, items 3–5): DDIM inversion, SDEdit, inpainting
// and likelihood of an image: the last sample, an uploaded picture or one
// drawn on the canvas. Every mode is one engine request (core/engine
// Request.Mode, Loaded.Likelihood) run by the worker like a sample; this
// module only gathers the image, the mask and the strength and shows the
// results. SDEdit and inpainting run in the page's live view (x_t, x̂0, the
// trajectory and the noise plot, as sampling does: app.js runInView);
// inversion and likelihood draw here. The picture is held as 8-bit values
// (imagelink.js quantize), as a PNG would hold it, so a link to a lab run
// (linkFields, fromLink) reproduces it exactly. app.js calls initModes with
// getters for its state.
import { DiffuseError } from './diffuse.js';
import { drawBatch, toImageData } from './render.js';
import { packValues, unpackValues, quantize } from './imagelink.js';

/** The lab's modes, as links and the engine name them. */
export const MODES = ['invert', 'sdedit', 'inpaint', 'likelihood'];
const WHAT = { invert: 'Inversion', sdedit: 'SDEdit', inpaint: 'Inpainting', likelihood: 'Likelihood' };

const $ = (id) => document.getElementById(id);

/** Root-mean-square difference of two equal-length arrays. */
export function rmse(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length);
}

/** initModes({sampler(), model(), options(), result(), range(),
 * runInView({request, link, what, auto}), cancel(), status(), setLink(link),
 * useSampler(name)}): wires the lab panel (#modes in index.html) to the
 * page's sampler, form and live view. */
export function initModes(app) {
  const el = {
    section: $('modes'), mode: $('mode'), src: $('mode-src'), mask: $('mode-mask'), useSample: $('mode-use-sample'),
    upload: $('mode-upload'), clear: $('mode-clear'), color: $('mode-color'), colorField: $('mode-color-field'), paintMask: $('mode-paint-mask'),
    resample: $('mode-resample'), jump: $('mode-jump'), repaintField: $('mode-repaint-field'),
    strength: $('mode-strength'), strengthOut: $('mode-strength-out'), strengthField: $('mode-strength-field'), run: $('mode-run'),
    cancel: $('mode-cancel'), status: $('mode-status'), out: $('mode-out'), strip: $('mode-strip'), plot: $('mode-plot'),
    interp: $('mode-interp'), interpOut: $('mode-interp-out'),
  };
  const st = { image: null, mask: null, shape: null, job: null, inverted: [], drawing: false, last: null };

  const range = () => app.range() || [-1, 1];
  const shape = () => { const m = app.model(); return m ? [1, ...m.info.shape] : null; };

  // The image is kept as floats in the data range (st.image); the canvas shows it.
  function reset() {
    const s = shape();
    if (!s || s[1] > 3 || s.length !== 4) { el.section.hidden = true; return; }
    el.section.hidden = false;
    const changed = !st.shape || st.shape.join() !== s.join();
    st.shape = s;
    el.colorField.hidden = s[1] !== 3;
    if (changed) {
      const [lo] = range();
      st.image = new Float32Array(s[1] * s[2] * s[3]).fill(lo);
      st.mask = new Float32Array(s[2] * s[3]).fill(1);
      st.inverted = [];
      show();
    }
    el.run.disabled = false;
  }

  function show() {
    drawBatch(el.src, st.image, st.shape, { range: range() });
    const [, , H, W] = st.shape;
    el.mask.width = W; el.mask.height = H;
    const ctx = el.mask.getContext('2d');
    const img = ctx.createImageData(W, H);
    for (let i = 0; i < H * W; i++) {
      img.data[4 * i] = 255;
      img.data[4 * i + 3] = st.mask[i] < 0.5 ? 140 : 0;
    }
    ctx.putImageData(img, 0, 0);
  }

  /** Reads the source canvas's pixels back into st.image (after drawing). */
  function fromCanvas() {
    const [, C, H, W] = st.shape;
    const [lo, hi] = range();
    const px = el.src.getContext('2d').getImageData(0, 0, W, H).data;
    for (let i = 0; i < H * W; i++) {
      for (let c = 0; c < C; c++) {
        const v = C === 3 ? px[4 * i + c] : (px[4 * i] + px[4 * i + 1] + px[4 * i + 2]) / 3;
        st.image[c * H * W + i] = lo + (v / 255) * (hi - lo);
      }
    }
    quantize(st.image, [lo, hi]); // a grey pixel averaged from R, G, B
  }

  // Drawing: a pen of about MNIST's stroke width (1/10 of the side), white
  // on a grey model, the chosen colour on a colour one; or the inpainting mask.
  function stroke(ev) {
    const r = el.src.getBoundingClientRect();
    const [, , H, W] = st.shape;
    const x = (ev.clientX - r.left) / r.width * W, y = (ev.clientY - r.top) / r.height * H;
    const w = Math.max(1.5, W / 10);
    if (el.paintMask.checked) {
      for (let j = 0; j < H; j++) for (let i = 0; i < W; i++) {
        if ((i + 0.5 - x) ** 2 + (j + 0.5 - y) ** 2 <= (w / 2 + 0.5) ** 2) st.mask[j * W + i] = 0;
      }
      show();
      return;
    }
    const ctx = el.src.getContext('2d');
    ctx.strokeStyle = ctx.fillStyle = st.shape[1] === 3 ? el.color.value : '#fff';
    ctx.lineWidth = w;
    ctx.lineCap = 'round';
    ctx.beginPath();
    if (st.last) { ctx.moveTo(st.last[0], st.last[1]); ctx.lineTo(x, y); ctx.stroke(); }
    else { ctx.arc(x, y, w / 2, 0, 2 * Math.PI); ctx.fill(); }
    st.last = [x, y];
    fromCanvas();
  }
  el.src.addEventListener('pointerdown', (ev) => {
    if (!st.shape) return;
    st.drawing = true; st.last = null;
    el.src.setPointerCapture(ev.pointerId);
    stroke(ev);
  });
  el.src.addEventListener('pointermove', (ev) => { if (st.drawing) stroke(ev); });
  const end = () => { st.drawing = false; st.last = null; };
  el.src.addEventListener('pointerup', end);
  el.src.addEventListener('pointercancel', end);

  el.clear.addEventListener('click', () => {
    if (el.paintMask.checked) st.mask.fill(1);
    else st.image.fill(range()[0]);
    show();
  });
  el.useSample.addEventListener('click', () => {
    const r = app.result();
    if (!r) { el.status.textContent = 'Sample an image first.'; return; }
    const n = st.image.length;
    st.image.set(r.x.subarray(0, n));
    quantize(st.image, range()); // 8 bits, as a link carries it
    show();
    el.status.textContent = 'Using the first image of the last sample.';
  });
  // An upload is center-cropped to a square and resized to the model's size.
  el.upload.addEventListener('change', async () => {
    const f = el.upload.files[0];
    if (!f) return;
    try {
      const bmp = await createImageBitmap(f);
      const [, , H, W] = st.shape;
      const side = Math.min(bmp.width, bmp.height);
      el.src.width = W; el.src.height = H;
      const ctx = el.src.getContext('2d');
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(bmp, (bmp.width - side) / 2, (bmp.height - side) / 2, side, side, 0, 0, W, H);
      fromCanvas();
      show();
      el.status.textContent = `Using ${f.name}, cropped and resized to ${W}×${H}.`;
    } catch (e) {
      el.status.textContent = `Could not read ${f.name} as an image.`;
    }
  });
  const syncMode = () => {
    el.strengthField.hidden = el.mode.value !== 'sdedit';
    el.paintMask.parentElement.hidden = el.repaintField.hidden = el.mode.value !== 'inpaint';
    el.interp.hidden = el.mode.value !== 'invert';
  };
  el.mode.addEventListener('change', syncMode);
  syncMode();
  el.strength.addEventListener('input', () => { el.strengthOut.value = el.strength.value; });
  el.strengthOut.value = el.strength.value;
  el.cancel.addEventListener('click', () => (st.job ? st.job.cancel() : app.cancel()));

  // A strip of the frames' x (the trajectory), newest last.
  function stripFrame(f) {
    if (!f.x) return;
    const c = document.createElement('canvas');
    drawBatch(c, f.x.subarray(0, st.image.length), st.shape, { range: range() });
    c.title = `σ/α ${f.level.toPrecision(3)}`;
    el.strip.append(c);
  }

  async function job(j, what) {
    st.job = j;
    el.cancel.disabled = false;
    el.run.disabled = true;
    el.section.dataset.state = 'running';
    try {
      return await j;
    } catch (e) {
      el.status.textContent = e instanceof DiffuseError && e.kind === 'cancelled' ? `${what}: cancelled.` : `${what} failed: ${e.message}`;
      el.section.dataset.state = 'error';
      throw e;
    } finally {
      st.job = null;
      el.cancel.disabled = true;
      el.run.disabled = false;
    }
  }

  function drawLikelihood(frames) {
    const c = el.plot, ctx = c.getContext('2d');
    c.hidden = false;
    ctx.clearRect(0, 0, c.width, c.height);
    if (frames.length < 2) return;
    const xs = frames.map((f) => Math.log10(f.level)), ys = frames.map((f) => f.deltaLogP);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(0, ...ys), Math.max(0, ...ys)];
    const px = (x) => 30 + (x - x0) / (x1 - x0 || 1) * (c.width - 40), py = (y) => c.height - 15 - (y - y0) / (y1 - y0 || 1) * (c.height - 25);
    ctx.strokeStyle = '#888'; ctx.strokeRect(30, 10, c.width - 40, c.height - 25);
    ctx.strokeStyle = '#4a9eff'; ctx.lineWidth = 2; ctx.beginPath();
    frames.forEach((f, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, px(xs[i]), py(ys[i])));
    ctx.stroke();
    ctx.fillStyle = getComputedStyle(c).color || '#888'; ctx.font = '10px sans-serif';
    ctx.fillText('accumulated Δlog p (nats) vs log₁₀ σ/α', 34, 22);
  }

  /** The link fields of a run of `mode` from the lab's state (app.js puts
   * them in the URL beside the form's settings). */
  function linkFields(mode) {
    const f = { mode, image: packValues(st.image, range()) };
    if (mode === 'sdedit') f.strength = el.strength.value;
    if (mode === 'inpaint') {
      f.mask = packValues(st.mask, [0, 1]);
      const passes = Math.round(+el.resample.value) || 1;
      if (passes > 1) Object.assign(f, { resample: String(passes), jump: String(Math.round(+el.jump.value) || 10) });
    }
    return f;
  }

  /** The engine request fields of an SDEdit or inpainting run. */
  function request(mode) {
    const r = { mode, image: st.image };
    if (mode === 'sdedit') r.strength = +el.strength.value;
    if (mode === 'inpaint') {
      r.mask = st.mask;
      // RePaint's resampling (Lugmayr et al. 2022): DDPM, passes × jump length
      const passes = Math.round(+el.resample.value) || 1;
      if (passes > 1) Object.assign(r, { resample: passes, jumpLength: Math.round(+el.jump.value) || 10 });
    }
    return r;
  }

  /** Reads a link's lab fields (app.js urlSettings) into the lab: mode,
   * picture, mask, strength, RePaint passes. Throws an Error saying what is
   * wrong (the picture's text is checked by imagelink.js before use).
   * Returns {request, link, what} for app.js's autorun. */
  function fromLink(want) {
    if (!MODES.includes(want.mode)) throw new Error(`mode "${String(want.mode).slice(0, 40)}" is not one of ${MODES.join(', ')}`);
    if (!st.shape) throw new Error('this model takes no pictures in the lab');
    const [, C, H, W] = st.shape;
    if (want.image === undefined) throw new Error(`mode ${want.mode} needs a picture (image=…)`);
    const image = unpackValues(want.image, C * H * W, range(), 'image');
    let mask = null;
    if (want.mode === 'inpaint') {
      if (want.mask === undefined) throw new Error('inpainting needs a mask (mask=…)');
      mask = unpackValues(want.mask, H * W, [0, 1], 'mask');
    } else if (want.mask !== undefined) throw new Error(`only inpainting takes a mask, not ${want.mode}`);
    const num = (name, v, lo, hi, int) => {
      const x = Number(v);
      if (v === '' || !Number.isFinite(x) || x < lo || x > hi || (int && !Number.isInteger(x))) throw new Error(`${name} ${String(v).slice(0, 20)} is outside ${lo}…${hi}`);
      return String(x);
    };
    if (want.strength !== undefined) el.strength.value = num('strength', want.strength, 0, 1);
    el.strengthOut.value = el.strength.value;
    el.resample.value = want.resample !== undefined ? num('RePaint passes', want.resample, 1, +el.resample.max, true) : '1';
    if (want.jump !== undefined) el.jump.value = num('jump length', want.jump, 1, +el.jump.max, true);
    st.image.set(image);
    if (mask) st.mask.set(mask); else st.mask.fill(1);
    st.inverted = [];
    el.paintMask.checked = false;
    el.mode.value = want.mode;
    syncMode();
    show();
    el.status.textContent = `The link's picture${mask ? ' and mask' : ''} (${W}×${H}).`;
    const rq = want.mode === 'sdedit' || want.mode === 'inpaint' ? request(want.mode) : {};
    return { request: rq, link: linkFields(want.mode), what: WHAT[want.mode] };
  }

  async function runMode({ auto = false } = {}) {
    const s = app.sampler(), m = app.model();
    if (!s || !m || !st.image) return;
    // Images only at the first, last and 10 evenly spaced frames (the strip).
    const base = { ...app.options(), batch: 1, imageEveryMs: 1e9, keyframes: 10 };
    el.strip.replaceChildren();
    el.plot.hidden = true;
    const mode = el.mode.value;
    el.section.dataset.mode = mode;
    const onStep = (f) => { stripFrame(f); el.status.textContent = `${mode}: step ${f.index + 1} of ${f.total}`; };
    const t0 = performance.now();
    const n = st.image.length;
    if (mode === 'likelihood') {
      const frames = [];
      const r = await job(s.likelihood(m, st.image, { seed: base.seed, class: base.class, onStep: (f) => {
        frames.push(f);
        el.status.textContent = `Likelihood: ${Math.round(f.progress * 100)} % of the ODE, ${f.nfe} network calls`;
      } }), 'Likelihood');
      drawLikelihood(frames);
      drawBatch(el.out, st.image, st.shape, { range: range() });
      st.last = null;
      el.section.dataset.bpd = r.bitsPerDim;
      el.status.textContent = `${r.bitsPerDim.toFixed(4)} bits/dim (log p = ${r.logP.toFixed(1)} nats; ${r.nfe} network calls, ${((performance.now() - t0) / 1e3).toFixed(1)} s)`;
      app.setLink(linkFields(mode));
    } else if (mode === 'invert') {
      const opts = { ...base, sampler: 'ddim', eta: 0, mode: 'invert', image: st.image, onStep };
      const inv = await job(s.sample(m, opts), 'Inversion');
      el.status.textContent = 'Inverted; regenerating from the inverted noise…';
      const back = await job(s.sample(m, { ...base, sampler: 'ddim', eta: 0, noise: inv.x }), 'Regeneration');
      drawBatch(el.out, back.x, back.shape, { range: range() });
      const err = rmse(back.x, st.image);
      st.inverted = [...st.inverted.slice(-1), inv.x];
      st.result = back.x;
      el.section.dataset.rmse = err;
      el.interp.disabled = st.inverted.length < 2;
      el.status.textContent = `Inverted to x_T in ${inv.nfe} steps and regenerated: reconstruction RMSE ${err.toFixed(4)} (data range ${range().join('…')}).`;
      app.setLink(linkFields(mode));
    } else {
      // SDEdit and inpainting run in the live view above, with the form's
      // batch; the lab shows the first sample.
      if (request(mode).resample > 1) app.useSampler('ddpm');
      el.cancel.disabled = false;
      el.run.disabled = true;
      el.section.dataset.state = 'running';
      let r;
      try {
        r = await app.runInView({ request: request(mode), link: linkFields(mode), what: WHAT[mode], auto });
      } finally {
        el.cancel.disabled = true;
        el.run.disabled = false;
      }
      if (!r) {
        el.status.textContent = `${WHAT[mode]}: ${app.status()}`;
        el.section.dataset.state = 'error';
        return;
      }
      const x = r.x.subarray(0, n);
      drawBatch(el.out, x, st.shape, { range: range() });
      st.result = Float32Array.from(x);
      el.section.dataset.rmse = rmse(x, st.image);
      if (mode === 'inpaint') { // the largest change outside the mask (0: kept exactly)
        const hw = st.mask.length;
        let kept = 0;
        for (let i = 0; i < n; i++) if (st.mask[i % hw] >= 0.5) kept = Math.max(kept, Math.abs(x[i] - st.image[i]));
        el.section.dataset.kept = kept;
      }
      el.status.textContent = `Done: ${r.nfe} network calls; RMS change from the input ${rmse(x, st.image).toFixed(4)}. The live view above shows the run.`;
    }
    el.section.dataset.state = 'done';
  }
  el.run.addEventListener('click', () => runMode().catch(() => {}));

  // Slerp between the last two inverted images' noises (engine NoiseTo).
  el.interp.addEventListener('click', () => (async () => {
    const s = app.sampler(), m = app.model();
    const [a, b] = st.inverted;
    const r = await job(s.sample(m, { ...app.options(), sampler: 'ddim', eta: 0, batch: 6, noise: a, noiseTo: b }), 'Interpolation');
    el.interpOut.hidden = false; // empty until the first morph (it is drawn full width)
    drawBatch(el.interpOut, r.x, r.shape, { range: range(), cols: 6 });
    el.status.textContent = 'Interpolated between the two inverted images (slerp of their noises).';
  })().catch(() => {}));

  el.section.modes = st; // for the browser tests: the image, mask and result
  return { reset, state: st, toImageData, fromLink, run: (o) => runMode(o).catch(() => {}) };
}
