// Turning model tensors into pixels. Samples are [B, C, H, W] float32 in the
// models' data range [-1, 1]; C = 1 is grey, C = 3 is RGB, anything else shows
// its first channel.

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
export function drawBatch(canvas, data, shape, { cols = gridColumns(shape[0]), gap = 1 } = {}) {
  const [B, , H, W] = shape;
  const rows = Math.ceil(B / cols);
  const w = cols * W + (cols - 1) * gap;
  const h = rows * H + (rows - 1) * gap;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, w, h);
  for (let b = 0; b < B; b++) {
    const x = (b % cols) * (W + gap);
    const y = Math.floor(b / cols) * (H + gap);
    ctx.putImageData(toImageData(data, shape, b), x, y);
  }
}

/** Draws sample `index` on canvas at its native size. */
export function drawSample(canvas, data, shape, index = 0) {
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
  if (index < 0) drawBatch(src, data, shape);
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
