// flowfig.js — the few-step idea in one picture, on the shipped 2-D toys
// (issue 21 item 4): the rectified-flow model's particles follow curved paths
// from noise to the swiss roll, its 2-rectified (reflow) version's nearly
// straight ones (Liu et al. 2023, "Flow Straight and Fast", sec. 2.3), and
// the consistency-distilled model has no path at all (one call maps noise to
// data; Song et al. 2023). Each row shows the paths of 25 Euler steps, the
// sample of 1 network call and that of 25, all from the same noise, computed
// live through diffuse.js like the rest of the page; the numbers under the
// pictures (straightness, the 1-call sample's distance from the 25-call one)
// are measured on those very runs. The paths are drawn by render.js
// (drawPaths), as the step dial draws its RK45 paths.
import { DiffuseError } from './diffuse.js';
import { drawPaths, drawPoints, straightness } from './render.js';

/** The models of the figure, in order, with the sampler each runs. */
export const ROWS = [
  { model: 'toy2d-flow', sampler: 'flow_euler', title: 'Rectified flow (toy2d-flow)' },
  { model: 'toy2d-reflow', sampler: 'flow_euler', title: 'After one reflow (toy2d-reflow)' },
  { model: 'toy2d-cm', sampler: 'consistency', title: 'Consistency-distilled (toy2d-cm)' },
];
/** The two budgets side by side (network calls = steps for these samplers). */
export const FEW = 1;
export const MANY = 25;
const BATCH = 256;
const EXTENT = 2.6;
const SIZE = 240;

export const FLOWFIG_CSS = `
.flowfig-rows { display: grid; gap: 0.75rem; margin: 0.5rem 0; }
.flowfig-row { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 0.5rem; align-items: start; }
.flowfig-row h3 { grid-column: 1 / -1; margin: 0; font-size: 0.95rem; }
.flowfig-row figure { margin: 0; font-size: 0.75rem; }
.flowfig-row canvas { display: block; width: 100%; max-width: 15rem; aspect-ratio: 1; height: auto; background: #111; border-radius: 4px; }
.flowfig-row .none { display: flex; align-items: center; justify-content: center; text-align: center; padding: 0.5rem; width: 100%; max-width: 15rem; aspect-ratio: 1; background: #111; color: #bbb; border-radius: 4px; box-sizing: border-box; }
.flowfig-num { font-variant-numeric: tabular-nums; }
`;

/** Per-coordinate RMS difference of two equal-length arrays. */
function rmsDiff(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; s += d * d; }
  return Math.sqrt(s / a.length);
}

const h = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k in n && !k.startsWith('aria') && !k.startsWith('data')) n[k] = v; else n.setAttribute(k, v);
  }
  n.append(...kids);
  return n;
};

/** The figure, built into `root`. get() returns {sampler, seed}: the page's
 * diffuse.js Sampler and seed. available(names) says whether a manifest
 * has the models. */
export class FlowFigure {
  static available(names) { return ROWS.slice(0, 2).every((r) => names.includes(r.model)); }

  constructor(root, get) {
    this.get = get;
    this.runId = 0;
    this.job = null;
    this.results = null; // [{row, paths: [Float32Array], few, many, shape, straight, gap}] (null where a row failed)
    this.el = {
      run: h('button', { type: 'button', className: 'flowfig-run', textContent: 'Draw the comparison' }),
      status: h('p', { className: 'flowfig-status status', role: 'status', 'aria-live': 'polite' }),
      rows: h('div', { className: 'flowfig-rows' }),
    };
    this.el.run.addEventListener('click', () => this.run());
    root.append(this.el.run, this.el.status, this.el.rows);
    this.el.status.textContent = `Loads the three toy models (${ROWS.map((r) => r.model).join(', ')}, 152 KB each) and samples ${BATCH} points with each.`;
  }

  cancel() {
    this.runId++;
    if (this.job) this.job.cancel();
    this.job = null;
    this.el.run.disabled = false;
  }

  async run() {
    const { sampler, seed = 0 } = this.get();
    if (!sampler) return;
    this.cancel();
    const id = ++this.runId;
    const live = () => id === this.runId;
    this.el.run.disabled = true;
    const out = [];
    try {
      for (const row of ROWS) {
        this.el.status.textContent = `${row.model}: loading…`;
        let m;
        try {
          m = await sampler.loadModel(row.model);
        } catch (err) {
          if (!live()) return;
          out.push({ row, error: err.message });
          continue;
        }
        if (!live()) return;
        const shape = [BATCH, ...m.info.shape];
        const once = async (steps, onStep) => {
          const job = sampler.sample(m, { sampler: row.sampler, steps, seed, batch: BATCH, onStep });
          this.job = job;
          try { return await job; } finally { if (this.job === job) this.job = null; }
        };
        this.el.status.textContent = `${row.model}: ${row.sampler}, ${FEW} and ${MANY} steps…`;
        // x_t at every evaluation of the 25-step run, then where it ends: the paths.
        const paths = [];
        const many = await once(MANY, (f) => { if (f.x) paths.push(Float32Array.from(f.x)); });
        if (!live()) return;
        paths.push(Float32Array.from(many.x));
        const few = await once(FEW);
        if (!live()) return;
        const flow = row.sampler !== 'consistency';
        out.push({
          row, shape, few: few.x, many: many.x, paths: flow ? paths : null,
          straight: flow ? straightness(paths, shape) : NaN, gap: rmsDiff(few.x, many.x),
        });
        this.results = out;
        this.render();
      }
      this.results = out;
      this.render();
      this.el.status.textContent = `Done: ${BATCH} points per picture, seed ${seed}, the same noise in every picture of a row.`;
    } catch (err) {
      if (!live()) return;
      this.el.status.textContent = err instanceof DiffuseError && err.kind === 'cancelled' ? 'Cancelled.' : `Failed: ${err.message}`;
    } finally {
      if (live()) { this.job = null; this.el.run.disabled = false; }
    }
  }

  render() {
    const rows = [];
    for (const r of this.results || []) {
      const head = h('h3', {}, r.row.title);
      if (r.error) {
        rows.push(h('div', { className: 'flowfig-row', 'data-model': r.row.model }, head, h('p', {}, `Could not load: ${r.error}`)));
        continue;
      }
      let pathsFig;
      if (r.paths) {
        const c = h('canvas', { 'aria-label': `Paths of the particles of ${r.row.model} over ${MANY} Euler steps` });
        const n = drawPaths(c, r.paths, r.shape, { extent: 3.2, n: 96, size: SIZE });
        pathsFig = h('figure', { className: 'flowfig-paths' }, c, h('figcaption', {},
          `${n} particles' paths, ${MANY} Euler steps; straightness `, h('span', { className: 'flowfig-num', 'data-straightness': String(r.straight) }, r.straight.toFixed(3)),
          ' (start-to-end distance / path length, 1 = straight)'));
      } else {
        pathsFig = h('figure', { className: 'flowfig-paths' }, h('div', { className: 'none' }, 'No ODE to follow: the network maps noise to data in one call.'),
          h('figcaption', {}, 'Consistency sampling re-noises between calls.'));
      }
      const cloud = (x, calls) => {
        const c = h('canvas', { 'aria-label': `${r.row.model}: ${calls} network call${calls > 1 ? 's' : ''}` });
        drawPoints(c, x, r.shape, { extent: EXTENT, size: SIZE });
        return c;
      };
      rows.push(h('div', { className: 'flowfig-row', 'data-model': r.row.model, 'data-gap': String(r.gap), 'data-straightness': String(r.straight) },
        head, pathsFig,
        h('figure', {}, cloud(r.few, FEW), h('figcaption', {}, `${FEW} network call (${r.row.sampler}); RMS from the ${MANY}-call sample: `,
          h('span', { className: 'flowfig-num' }, r.gap.toFixed(3)))),
        h('figure', {}, cloud(r.many, MANY), h('figcaption', {}, `${MANY} network calls`))));
    }
    this.el.rows.replaceChildren(...rows);
  }
}
