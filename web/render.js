// Turning model tensors into pixels. Samples are [B, C, H, W] float32 in the
// models' data range [-1, 1]; C = 1 is grey, C = 3 is RGB, anything else shows
// its first channel. A model whose samples are points (H = W = 1, C >= 2, the
// 2-D toy models) is drawn as a scatter plot of the whole batch: a particle
// cloud flowing from noise to the data distribution.

/** A square grid of n×n points covering [-extent, extent]² (2-D samples
 * back to back), where drawPoints draws the score field. */
export function fieldGrid(extent, n = 17) {
  const xs = new Float32Array(2 * n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const k = 2 * (i * n + j);
      xs[k] = -extent + ((j + 0.5) * 2 * extent) / n;
      xs[k + 1] = -extent + ((i + 0.5) * 2 * extent) / n;
    }
  }
  return xs;
}

// drawField draws the score ∇log p_t(x) = (α·x̂0 − x)/σ² at each grid point
// as an arrow scaled to the grid spacing (the 90th-percentile magnitude gets a
// full cell).
function drawField(ctx, { xs, x0, alpha, sigma }, px, size) {
  const n = xs.length / 2;
  const cell = size / Math.sqrt(n);
  const s = new Float32Array(xs.length);
  const mags = [];
  for (let i = 0; i < xs.length; i += 2) {
    s[i] = (alpha * x0[i] - xs[i]) / (sigma * sigma);
    s[i + 1] = (alpha * x0[i + 1] - xs[i + 1]) / (sigma * sigma);
    mags.push(Math.hypot(s[i], s[i + 1]));
  }
  const ref = [...mags].sort((a, b) => a - b)[Math.floor(0.9 * (mags.length - 1))] || 1;
  ctx.strokeStyle = 'rgba(120,190,255,0.7)';
  ctx.lineWidth = 1.2;
  ctx.beginPath();
  for (let i = 0; i < xs.length; i += 2) {
    const m = mags[i / 2];
    if (!(m > 0)) continue;
    const len = 0.85 * cell * Math.min(1, m / ref);
    const ux = s[i] / m, uy = -s[i + 1] / m; // canvas y points down
    const x1 = px(xs[i]) - (ux * len) / 2, y1 = size - px(xs[i + 1]) - (uy * len) / 2;
    const x2 = x1 + ux * len, y2 = y1 + uy * len;
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    const h = Math.min(4, len / 3);
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 - h * (ux - 0.5 * uy), y2 - h * (uy + 0.5 * ux));
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 - h * (ux + 0.5 * uy), y2 - h * (uy - 0.5 * ux));
  }
  ctx.stroke();
}

/** Whether samples of this shape are points rather than images. */
export function isPoints(shape) {
  return shape[2] === 1 && shape[3] === 1 && shape[1] >= 2;
}

const POINT_SIZE = 320;

/** Draws a batch of points (the first two coordinates of each sample) on a
 * square canvas covering [-extent, extent]²; `trail` (optional, an earlier
 * frame's data) is drawn faintly underneath. Returns the extent used. */
export function drawPoints(canvas, data, shape, { extent, trail, field, size = POINT_SIZE } = {}) {
  const [B, C] = shape;
  if (!extent) {
    let m = 0;
    for (let b = 0; b < B; b++) m = Math.max(m, Math.abs(data[b * C]), Math.abs(data[b * C + 1]));
    extent = Math.max(1, Math.min(m * 1.1, 50));
  }
  if (canvas.width !== size || canvas.height !== size) {
    canvas.width = size;
    canvas.height = size;
  }
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#111';
  ctx.fillRect(0, 0, size, size);
  const px = (v) => ((v + extent) / (2 * extent)) * size;
  ctx.strokeStyle = 'rgba(255,255,255,0.15)';
  ctx.beginPath();
  ctx.moveTo(px(0), 0); ctx.lineTo(px(0), size);
  ctx.moveTo(0, px(0)); ctx.lineTo(size, px(0));
  ctx.stroke();
  if (field) drawField(ctx, field, px, size);
  const r = Math.max(1, size / 200);
  const dots = (d, colour) => {
    ctx.fillStyle = colour;
    for (let b = 0; b < B; b++) {
      ctx.fillRect(px(d[b * C]) - r, size - px(d[b * C + 1]) - r, 2 * r, 2 * r);
    }
  };
  if (trail) dots(trail, 'rgba(240,106,152,0.25)');
  dots(data, 'rgba(255,255,255,0.85)');
  return extent;
}

/** ImageData of sample `index` of a [B, C, H, W] batch; range is the
 * model's data range [lo, hi] (lo black, hi white; default [-1, 1]). */
export function toImageData(data, shape, index = 0, range = [-1, 1]) {
  const [lo, hi] = range;
  const k = 255 / (hi - lo);
  const byte = (v) => {
    const b = (v - lo) * k;
    return b <= 0 ? 0 : b >= 255 ? 255 : b + 0.5 | 0;
  };
  const [, C, H, W] = shape;
  const n = H * W;
  const base = index * C * n;
  const img = new ImageData(W, H);
  const px = img.data;
  for (let i = 0; i < n; i++) {
    let r, g, b;
    if (C === 3) {
      r = byte(data[base + i]);
      g = byte(data[base + n + i]);
      b = byte(data[base + 2 * n + i]);
    } else {
      r = g = b = byte(data[base + i]);
    }
    px[4 * i] = r;
    px[4 * i + 1] = g;
    px[4 * i + 2] = b;
    px[4 * i + 3] = 255;
  }
  return img;
}

/** Columns of a near-square grid for n images. */
export function gridColumns(n) {
  return Math.ceil(Math.sqrt(n));
}

/** Draws the whole batch as a grid (1-pixel gaps) on canvas, resizing it to
 * the grid's native size; CSS scales it up without smoothing. */
export function drawBatch(canvas, data, shape, { cols = gridColumns(shape[0]), gap = 1, extent, trail, field, range } = {}) {
  if (isPoints(shape)) return drawPoints(canvas, data, shape, { extent, trail, field });
  const [B, , H, W] = shape;
  const rows = Math.ceil(B / cols);
  const w = cols * W + (cols - 1) * gap;
  const h = rows * H + (rows - 1) * gap;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h); // the gaps show the canvas's CSS background
  for (let b = 0; b < B; b++) {
    const x = (b % cols) * (W + gap);
    const y = Math.floor(b / cols) * (H + gap);
    ctx.putImageData(toImageData(data, shape, b, range), x, y);
  }
}

/** Draws sample `index` on canvas at its native size. */
export function drawSample(canvas, data, shape, index = 0, { extent, range } = {}) {
  if (isPoints(shape)) return drawPoints(canvas, data, shape, { extent, size: 96 });
  const [, , H, W] = shape;
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  canvas.getContext('2d').putImageData(toImageData(data, shape, index, range), 0, 0);
}

/** A PNG Blob of one sample (index) or of the whole batch as a grid
 * (index = -1), scaled up by an integer factor with nearest-neighbour pixels
 * so that small samples stay crisp (default: at least 256 px wide). */
export async function batchToPNG(data, shape, { index = -1, scale, range } = {}) {
  const src = document.createElement('canvas');
  if (isPoints(shape)) drawPoints(src, data, shape, { size: 512 });
  else if (index < 0) drawBatch(src, data, shape, { range });
  else drawSample(src, data, shape, index, { range });
  const k = scale || Math.max(1, Math.ceil(256 / src.width));
  const out = document.createElement('canvas');
  out.width = src.width * k;
  out.height = src.height * k;
  const ctx = out.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(src, 0, 0, out.width, out.height);
  return new Promise((resolve, reject) => out.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png'));
}
