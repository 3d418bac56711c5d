// Turning model tensors into pixels. Samples are [B, C, H, W] float32 in the
// models' data range [-1, 1]; C = 1 is grey, C = 3 is RGB, anything else shows
// its first channel. A model whose samples are points (H = W = 1, C >= 2, the
// 2-D toy models) is drawn as a scatter plot of the whole batch: a particle
// cloud flowing from noise to the data distribution.

/** Whether samples of this shape are points rather than images. */
export function isPoints(shape) {
  return shape[2] === 1 && shape[3] === 1 && shape[1] >= 2;
}

const POINT_SIZE = 320;

/** Draws a batch of points (the first two coordinates of each sample) on a
 * square canvas covering [-extent, extent]²; `trail` (optional, an earlier
 * frame's data) is drawn faintly underneath. Returns the extent used. */
export function drawPoints(canvas, data, shape, { extent, trail, size = POINT_SIZE } = {}) {
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

function byte(v) {
  const b = (v + 1) * 127.5;
  return b <= 0 ? 0 : b >= 255 ? 255 : b + 0.5 | 0;
}

/** ImageData of sample `index` of a [B, C, H, W] batch. */
export function toImageData(data, shape, index = 0) {
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
export function drawBatch(canvas, data, shape, { cols = gridColumns(shape[0]), gap = 1, extent, trail } = {}) {
  if (isPoints(shape)) return drawPoints(canvas, data, shape, { extent, trail });
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
    ctx.putImageData(toImageData(data, shape, b), x, y);
  }
}

/** Draws sample `index` on canvas at its native size. */
export function drawSample(canvas, data, shape, index = 0, { extent } = {}) {
  if (isPoints(shape)) return drawPoints(canvas, data, shape, { extent, size: 96 });
  const [, , H, W] = shape;
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  canvas.getContext('2d').putImageData(toImageData(data, shape, index), 0, 0);
}

/** A PNG Blob of one sample (index) or of the whole batch as a grid
 * (index = -1), scaled up by an integer factor with nearest-neighbour pixels
 * so that small samples stay crisp (default: at least 256 px wide). */
export async function batchToPNG(data, shape, { index = -1, scale } = {}) {
  const src = document.createElement('canvas');
  if (isPoints(shape)) drawPoints(src, data, shape, { size: 512 });
  else if (index < 0) drawBatch(src, data, shape);
  else drawSample(src, data, shape, index);
  const k = scale || Math.max(1, Math.ceil(256 / src.width));
  const out = document.createElement('canvas');
  out.width = src.width * k;
  out.height = src.height * k;
  const ctx = out.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(src, 0, 0, out.width, out.height);
  return new Promise((resolve, reject) => out.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png'));
}
