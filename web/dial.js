// dial.js — the step dial: every sampler that runs the loaded model, at equal
// network-call budgets (1, 2, 4, 8, 16, 32), side by side, with each result's
// error against a tight-tolerance RK45 solution of the same model's ODE from
// the same noise (per-pixel RMS versus network calls, log-log, drawn here as
// SVG). Everything runs live through diffuse.js, on the visitor's machine.
// The page (app.js) and <diffusion-sampler show="dial"> both mount it.
//
// The error plot measures how far each solver is from the ODE's exact
// solution, the quantity solver papers compare (e.g. Lu et al. 2022,
// DPM-Solver, fig. 3; Karras et al. 2022, fig. 2). A stochastic sampler
// solves a different equation, so its error does not shrink to 0: it is
// drawn dashed.
import { DiffuseError } from './diffuse.js';
import { drawPaths, drawPoints, drawSample, isPoints } from './render.js';
import { forModel, takesSteps } from './params.js';

/** The network-call budgets of the dial. */
export const BUDGETS = [1, 2, 4, 8, 16, 32];
/** The reference: RK45 at rtol = atol = 1e-5 (sampler.Options RTol/ATol). */
export const REFERENCE = { sampler: 'rk45', params: { rtol: 1e-5, atol: 1e-5 } };
/** Points drawn per sample cloud for 2-D models (one image for the others). */
const POINT_BATCH = 256;
const POINT_EXTENT = 2.6;

export const DIAL_CSS = `
.dial-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem; margin: 0.4rem 0; }
.dial-budgets { display: inline-flex; gap: 0.25rem; flex-wrap: wrap; }
.dial-budgets button[aria-pressed="true"] { font-weight: 700; outline: 2px solid currentColor; }
.dial-status { font-size: 0.85rem; opacity: 0.85; flex: 1 1 12rem; }
.dial-progress { width: 100%; height: 0.5rem; }
.dial-tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(7.5rem, 1fr)); gap: 0.5rem; margin: 0.5rem 0; }
.dial-tile { margin: 0; font-size: 0.75rem; line-height: 1.25; }
.dial-tile canvas { display: block; width: 100%; aspect-ratio: 1; height: auto; image-rendering: pixelated; background: #111; border-radius: 4px; }
.dial-tile.ref canvas { outline: 2px solid #2a8; }
.dial-tile figcaption { margin-top: 0.15rem; }
.dial-tile .rms { font-variant-numeric: tabular-nums; opacity: 0.8; }
.dial-plot { display: block; width: 100%; max-width: 40rem; height: auto; }
.dial-plot text { font: 11px system-ui, sans-serif; fill: currentColor; }
.dial-legend { display: flex; flex-wrap: wrap; gap: 0.2rem 0.8rem; font-size: 0.75rem; list-style: none; padding: 0; margin: 0.3rem 0; }
.dial-legend i { display: inline-block; width: 1.2rem; height: 0; border-top: 3px solid; vertical-align: middle; margin-right: 0.25rem; }
.dial-legend i.dashed { border-top-style: dashed; }
.dial-paths { display: block; width: 100%; max-width: 20rem; aspect-ratio: 1; height: auto; background: #111; border-radius: 4px; }
`;

/** Whether a sampler draws noise when run with its defaults (as the dial
 * runs it): a stochastic one, unless its noise is an η whose default is 0
 * (DDIM at η = 0 is the ODE's solver). */
export function drawsNoise(info) {
  const eta = info.params?.find((p) => p.name === 'eta');
  return !!info.stochastic && !(eta && eta.default === 0);
}

/** Whether a result diverged: it is more than 3 times as far from the
 * reference (RMS) as the reference is from zero (the RMS of its values).
 * Two independent samples of the data differ by at most √2 times that, so
 * a stochastic sampler's result stays under the line and a diverged one
 * says nothing about the data. This is what a second-order step in the
 * noise level (heun, dpm_2 and their kin) does at 2 steps when σ starts far
 * above the data's scale (a VE model; a flow model, whose σ = t/(1-t)
 * starts at 999): its one step spans σ from the top to near 0, and Heun's
 * trapezoid or DPM-2's midpoint weighs a slope measured near the data over
 * the whole span — the method on that grid, not a bug (core/sampler
 * TestLevelSecondOrderOnFlowGrid; README, "The step dial"). */
export function diverged(err, referenceSize) {
  return err > 3 * referenceSize;
}

/** Per-pixel RMS difference of two equal-length arrays. */
export function rms(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; s += d * d; }
  return Math.sqrt(s / a.length);
}

/** The largest step count whose run takes at most `budget` network calls
 * (the grid's evaluations, from the engine's Plan: Heun-type samplers make
 * two per step), with the calls it takes; null when even one step costs
 * more. evals(k) is nondecreasing in k. */
export async function stepsFor(evals, budget) {
  let k = budget;
  let e = await evals(k);
  if (e === budget) return { steps: k, evals: e };
  if (e > 0) k = Math.max(1, Math.floor((budget * budget) / e));
  while (k > 1 && !((e = await evals(k)) > 0 && e <= budget)) k--;
  e = await evals(k);
  if (!(e > 0 && e <= budget)) return null;
  for (let next; k < budget && (next = await evals(k + 1)) > 0 && next <= budget; k++) e = next;
  return { steps: k, evals: e };
}

const h = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k in n && k !== 'role' && !k.startsWith('aria') && !k.startsWith('data')) n[k] = v; else n.setAttribute(k, v);
  }
  n.append(...kids);
  return n;
};
const SVG = 'http://www.w3.org/2000/svg';
const s = (tag, attrs = {}, text) => {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text != null) n.textContent = text;
  return n;
};
const colour = (i, n) => `hsl(${Math.round((360 * i) / Math.max(n, 1))} 70% 55%)`;
const fmt = (v) => (v >= 0.01 ? v.toFixed(3) : v.toExponential(1));

/** The dial, built into `root` (an element; the page's panel or the
 * element's shadow card). get() returns {sampler, model, options} for the
 * run: options are the page's seed, class and guidance. */
export class StepDial {
  constructor(root, get) {
    this.get = get;
    this.results = null; // {reference, rows: [{info, cells: {budget: {steps, evals, x, rms, error}}}]}
    this.budget = 4;
    this.job = null;
    this.runId = 0;
    this.el = {
      run: h('button', { type: 'button', className: 'dial-run', textContent: 'Run the dial' }),
      cancel: h('button', { type: 'button', className: 'dial-cancel', textContent: 'Cancel', disabled: true }),
      status: h('span', { className: 'dial-status', role: 'status', 'aria-live': 'polite' }),
      progress: h('progress', { className: 'dial-progress', max: 1, value: 0, hidden: true, 'aria-label': 'Dial progress' }),
      budgets: h('div', { className: 'dial-budgets', role: 'group', 'aria-label': 'Network calls per sample' }),
      tiles: h('div', { className: 'dial-tiles' }),
      plot: s('svg', { class: 'dial-plot', viewBox: '0 0 480 300', role: 'img', 'aria-label': 'Per-pixel RMS error against RK45 versus network calls, log-log' }),
      legend: h('ul', { className: 'dial-legend' }),
      paths: h('canvas', { className: 'dial-paths', width: 320, height: 320, hidden: true, role: 'img', 'aria-label': 'Particle paths of the reference ODE solution' }),
      pathsCaption: h('p', { className: 'dial-status', hidden: true }),
      divergedNote: h('p', { className: 'dial-status dial-diverged', hidden: true }),
    };
    const e = this.el;
    for (const b of BUDGETS) {
      const btn = h('button', { type: 'button', textContent: String(b), 'aria-pressed': String(b === this.budget), 'data-budget': String(b) });
      btn.addEventListener('click', () => { this.budget = b; this.render(); });
      e.budgets.append(btn);
    }
    e.run.addEventListener('click', () => this.run());
    e.cancel.addEventListener('click', () => this.cancel());
    root.append(
      h('div', { className: 'dial-bar' }, e.run, e.cancel, h('span', {}, 'Network calls: '), e.budgets),
      e.progress, e.status, e.tiles, e.plot, e.divergedNote, e.legend, e.paths, e.pathsCaption,
    );
    this.clear();
  }

  /** Forgets the results (the model or the settings changed). */
  clear() {
    this.cancel();
    this.results = null;
    this.el.tiles.replaceChildren();
    this.el.plot.replaceChildren();
    this.el.legend.replaceChildren();
    this.el.divergedNote.hidden = true;
    this.el.paths.hidden = true;
    this.el.pathsCaption.hidden = true;
    this.el.status.textContent = 'Runs every sampler at 1, 2, 4, 8, 16 and 32 network calls and measures each against an RK45 solution (tolerance 10⁻⁵).';
  }

  cancel() {
    this.runId++;
    if (this.job) this.job.cancel();
    this.job = null;
    this.el.run.disabled = false;
    this.el.cancel.disabled = true;
    this.el.progress.hidden = true;
  }

  /** Runs the reference, then every sampler at every budget. */
  async run() {
    const { sampler, model, options = {} } = this.get();
    if (!sampler || !model) return;
    this.cancel();
    const id = ++this.runId;
    const live = () => id === this.runId;
    const e = this.el;
    e.run.disabled = true;
    e.cancel.disabled = false;
    e.progress.hidden = false;
    e.progress.value = 0;
    const points = isPoints([1, ...model.info.shape]);
    const base = { seed: options.seed ?? 0, class: options.class ?? null, guidance: options.guidance ?? 0, batch: points ? POINT_BATCH : 1 };
    const samplers = forModel(sampler.samplers || [], model.info).filter((i) => i.name !== REFERENCE.sampler && takesSteps(i));
    const sampleOne = async (opts, onStep) => {
      const job = sampler.sample(model, { ...base, ...opts, onStep });
      this.job = job;
      try { return await job; } finally { if (this.job === job) this.job = null; }
    };
    try {
      // 1. The reference (an adaptive run: its progress is the frames' estimate).
      e.status.textContent = 'Reference: RK45 at rtol = atol = 10⁻⁵…';
      const frames = [];
      const reference = await sampleOne({ ...REFERENCE }, (f) => {
        if (!live()) return;
        e.progress.value = 0.3 * (f.progress || 0);
        e.status.textContent = `Reference: RK45 at rtol = atol = 10⁻⁵, ${f.nfe} network calls…`;
        if (points && f.x) frames.push(Float32Array.from(f.x));
      });
      if (!live()) return;
      if (points && reference.x) frames.push(Float32Array.from(reference.x));
      this.results = { reference, size: rms(reference.x, new Float32Array(reference.x.length)), rows: [], points, range: model.info.range, frames, schedule: model.info.schedule || '', shape: [base.batch, ...model.info.shape] };
      // 2. The step counts that fit each budget (the engine's plan, no sampling).
      const jobs = [];
      for (const info of samplers) {
        const row = { info, cells: {} };
        this.results.rows.push(row);
        const cache = new Map();
        const evals = async (k) => {
          if (!cache.has(k)) {
            cache.set(k, sampler.plan(model, { ...base, sampler: info.name, steps: k }).then((p) => p.evals, () => -1));
          }
          return cache.get(k);
        };
        for (const b of BUDGETS) {
          const fit = await stepsFor(evals, b);
          if (!live()) return;
          if (!fit) { row.cells[b] = { error: 'one step takes more calls' }; continue; }
          const same = Object.values(row.cells).find((c) => c.steps === fit.steps && !c.error);
          row.cells[b] = { ...fit, same };
          if (!same) jobs.push([row, b]);
        }
      }
      // 3. Every run, in budget order so the plot fills in from the left.
      jobs.sort((a, b) => a[1] - b[1]);
      const totalCalls = jobs.reduce((n, [row, b]) => n + row.cells[b].evals, 0);
      let done = 0;
      for (const [row, b] of jobs) {
        const cell = row.cells[b];
        e.status.textContent = `${row.info.display || row.info.name}: ${cell.steps} steps, ${cell.evals} network calls…`;
        try {
          const r = await sampleOne({ sampler: row.info.name, steps: cell.steps });
          if (!live()) return;
          cell.x = r.x;
          cell.rms = rms(r.x, reference.x);
          cell.ms = r.totalMs;
        } catch (err) {
          if (!live()) return;
          if (err instanceof DiffuseError && err.kind === 'cancelled') return;
          cell.error = err.message;
        }
        done += cell.evals;
        e.progress.value = 0.3 + (0.7 * done) / Math.max(totalCalls, 1);
        this.render();
      }
      for (const row of this.results.rows) {
        for (const c of Object.values(row.cells)) {
          if (c.same) Object.assign(c, { x: c.same.x, rms: c.same.rms, error: c.same.error });
        }
      }
      e.status.textContent = `Done: ${samplers.length} samplers × ${BUDGETS.length} budgets against RK45 (${reference.nfe} network calls).`;
      this.render();
    } catch (err) {
      if (!live()) return;
      e.status.textContent = err instanceof DiffuseError && err.kind === 'cancelled' ? 'Cancelled.' : `Failed: ${err.message}`;
    } finally {
      if (live()) {
        this.job = null;
        e.run.disabled = false;
        e.cancel.disabled = true;
        e.progress.hidden = true;
      }
    }
  }

  /** Draws the tiles of the chosen budget, the error plot and the paths. */
  render() {
    const e = this.el;
    for (const btn of e.budgets.children) btn.setAttribute('aria-pressed', String(+btn.dataset.budget === this.budget));
    const R = this.results;
    if (!R) return;
    const shape = R.shape;
    const draw = (canvas, x, trail) => {
      if (R.points) drawPoints(canvas, x, shape, { extent: POINT_EXTENT, trail, size: 160 });
      else drawSample(canvas, x, shape, 0, { range: R.range });
    };
    const tiles = [];
    const ref = h('canvas', {});
    draw(ref, R.reference.x);
    tiles.push(h('figure', { className: 'dial-tile ref', 'data-sampler': 'rk45' }, ref,
      h('figcaption', {}, `RK45 reference · ${R.reference.nfe} calls`)));
    for (const row of R.rows) {
      const c = row.cells[this.budget];
      if (!c) continue;
      const cv = h('canvas', {});
      const x = c.x || c.same?.x;
      const err = c.error || c.same?.error;
      if (x) draw(cv, x, R.points ? R.reference.x : undefined);
      const r = c.rms ?? c.same?.rms;
      const what = c.steps ? `${c.steps} step${c.steps > 1 ? 's' : ''} · ${c.evals} call${c.evals > 1 ? 's' : ''}` : '';
      const off = r != null && diverged(r, R.size);
      tiles.push(h('figure', { className: 'dial-tile', 'data-sampler': row.info.name, 'data-evals': String(c.evals || ''), 'data-rms': r == null ? '' : String(r), 'data-diverged': String(off) },
        cv, h('figcaption', {}, `${row.info.display || row.info.name}${drawsNoise(row.info) ? ' (stochastic)' : ''}`, h('br'), what,
          h('br'), h('span', { className: 'rms' }, err ? `— ${err}` : r == null ? '…' : `RMS ${fmt(r)}${off ? ' · diverged' : ''}`))));
    }
    e.tiles.replaceChildren(...tiles);
    this.plot();
    this.drawPaths();
  }

  /** The log-log error plot: per-pixel RMS against network calls. */
  plot() {
    const R = this.results;
    const svg = this.el.plot;
    svg.replaceChildren();
    const series = R.rows.map((row, i) => {
      const pts = new Map(); // evals → rms (a budget that fits fewer calls repeats a point)
      for (const b of BUDGETS) {
        const c = row.cells[b];
        const r = c?.rms ?? c?.same?.rms;
        if (c?.evals && r > 0 && isFinite(r)) pts.set(c.evals, r);
      }
      return { row, colour: colour(i, R.rows.length), pts: [...pts].sort((a, b) => a[0] - b[0]) };
    });
    const all = series.flatMap((q) => q.pts.map((p) => p[1]));
    const W = 480, H = 300, L = 52, Rm = 12, T = 12, B = 36;
    svg.append(s('rect', { x: L, y: T, width: W - L - Rm, height: H - T - B, fill: 'none', stroke: 'currentColor', 'stroke-opacity': 0.4 }));
    if (!all.length) {
      svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No finished runs yet'));
      return;
    }
    let lo = Math.floor(Math.log10(Math.min(...all)));
    let hi = Math.ceil(Math.log10(Math.max(...all)));
    if (hi <= lo) hi = lo + 1;
    const X = (n) => L + ((W - L - Rm) * Math.log2(n)) / Math.log2(BUDGETS[BUDGETS.length - 1]);
    const Y = (v) => T + ((H - T - B) * (hi - Math.log10(v))) / (hi - lo);
    for (const n of BUDGETS) {
      svg.append(s('line', { x1: X(n), x2: X(n), y1: T, y2: H - B, stroke: 'currentColor', 'stroke-opacity': 0.12 }));
      svg.append(s('text', { x: X(n), y: H - B + 14, 'text-anchor': 'middle' }, String(n)));
    }
    for (let d = lo; d <= hi; d++) {
      svg.append(s('line', { x1: L, x2: W - Rm, y1: Y(10 ** d), y2: Y(10 ** d), stroke: 'currentColor', 'stroke-opacity': 0.12 }));
      svg.append(s('text', { x: L - 4, y: Y(10 ** d) + 4, 'text-anchor': 'end' }, `1e${d}`));
    }
    svg.append(s('text', { x: (L + W - Rm) / 2, y: H - 4, 'text-anchor': 'middle' }, 'network calls (NFE)'));
    svg.append(s('text', { x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(T + H - B) / 2})` }, 'RMS vs RK45'));
    const legend = [];
    let anyOff = false;
    for (const q of series) {
      if (!q.pts.length) continue;
      const dash = drawsNoise(q.row.info) ? '5 4' : 'none';
      svg.append(s('polyline', { points: q.pts.map(([n, v]) => `${X(n).toFixed(1)},${Y(v).toFixed(1)}`).join(' '), fill: 'none', stroke: q.colour, 'stroke-width': 1.8, 'stroke-dasharray': dash }));
      for (const [n, v] of q.pts) {
        // A diverged result is a hollow ring (see diverged()).
        const off = diverged(v, R.size);
        anyOff ||= off;
        const c = s('circle', { cx: X(n).toFixed(1), cy: Y(v).toFixed(1), r: off ? 4.5 : 3, fill: off ? 'none' : q.colour, stroke: q.colour, 'stroke-width': 1.5, 'data-sampler': q.row.info.name, 'data-nfe': String(n), 'data-rms': String(v), 'data-diverged': String(off) });
        c.append(s('title', {}, `${q.row.info.display || q.row.info.name}: ${n} calls, RMS ${fmt(v)}${off ? ' (diverged)' : ''}`));
        svg.append(c);
      }
      const swatch = h('i', { className: drawsNoise(q.row.info) ? 'dashed' : '' });
      swatch.style.borderColor = q.colour; // (CSSOM: the CSP refuses style attributes)
      legend.push(h('li', {}, swatch, q.row.info.display || q.row.info.name));
    }
    this.el.legend.replaceChildren(...legend);
    const note = this.el.divergedNote;
    note.hidden = !anyOff;
    note.textContent = !anyOff ? '' : `Hollow rings: diverged, more than 3 times as far from the reference as the reference is from 0 (RMS ${fmt(R.size)}).` +
      ' A second-order sampler that steps in the noise level σ (Heun, DPM-2 and their kin) does this at 2 steps when σ starts far above the data\'s scale' +
      ' (a VE model; a flow model, whose σ = t/(1−t) starts at 999): its one second-order step spans σ from the top to near 0 and weighs a slope measured' +
      ' near the data over all of it. That is the method on this grid, not a bug.' + (R.schedule.startsWith('flow') ? ' Flow Heun steps in t and does not.' : '');
  }

  /** For 2-D models: each particle's path along the reference ODE run (the
   * accepted RK45 steps, x_t as the sampler holds it): curved for a
   * diffusion or first flow model, nearly straight after reflow. */
  drawPaths() {
    const R = this.results;
    const c = this.el.paths;
    const show = R.points && R.frames.length > 1 && !R.schedule.startsWith('consistency');
    c.hidden = !show;
    this.el.pathsCaption.hidden = !show;
    if (!show) return;
    const n = drawPaths(c, R.frames, R.shape, { n: 96, size: c.width });
    this.el.pathsCaption.textContent = `Paths of ${n} particles from noise to data along the reference ODE solution (${R.frames.length - 1} accepted RK45 steps; white: where they end). Straight paths are why one Euler step can suffice.`;
  }
}
