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

/** Draws the paths of the first `n` particles of a 2-D point model through
 * `frames` (successive x_t of one run, [B, C, 1, 1] each, the last where
 * they end) as coloured lines on a square canvas covering [-extent,
 * extent]², the end points white. The step dial (dial.js) and the
 * straight-paths figure (flowfig.js) draw trajectories with it. Returns the
 * number of paths drawn. */
export function drawPaths(canvas, frames, shape, { extent = 3.2, n = 96, size = POINT_SIZE } = {}) {
  if (canvas.width !== size || canvas.height !== size) {
    canvas.width = size;
    canvas.height = size;
  }
  const ctx = canvas.getContext('2d');
  const px = (v) => ((v + extent) / (2 * extent)) * size;
  ctx.fillStyle = '#111';
  ctx.fillRect(0, 0, size, size);
  const C = shape[1];
  n = Math.min(n, shape[0]);
  if (!frames.length) return 0;
  ctx.lineWidth = 1;
  ctx.globalAlpha = 0.7;
  for (let b = 0; b < n; b++) {
    ctx.strokeStyle = `hsl(${Math.round((360 * b) / n)} 70% 55%)`;
    ctx.beginPath();
    frames.forEach((f, i) => {
      const x = px(f[b * C]), y = size - px(f[b * C + 1]);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.fillStyle = '#fff';
  const last = frames[frames.length - 1];
  for (let b = 0; b < n; b++) ctx.fillRect(px(last[b * C]) - 1.5, size - px(last[b * C + 1]) - 1.5, 3, 3);
  return n;
}

/** How straight the particles' paths through `frames` are: the mean over
 * particles of (distance from start to end) / (length of the polyline), 1
 * for straight lines, smaller the more they bend (the quantity reflow
 * improves; Liu et al. 2023, "Flow Straight and Fast", sec. 2.3). */
export function straightness(frames, shape) {
  const [B, C] = shape;
  if (frames.length < 2) return NaN;
  let sum = 0, count = 0;
  for (let b = 0; b < B; b++) {
    let len = 0;
    for (let i = 1; i < frames.length; i++) {
      len += Math.hypot(frames[i][b * C] - frames[i - 1][b * C], frames[i][b * C + 1] - frames[i - 1][b * C + 1]);
    }
    const a = frames[0], z = frames[frames.length - 1];
    const chord = Math.hypot(z[b * C] - a[b * C], z[b * C + 1] - a[b * C + 1]);
    if (len > 0) { sum += chord / len; count++; }
  }
  return count ? sum / count : NaN;
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

// ---------- model cards: a small, safe markdown renderer ----------
//
// renderMarkdown turns a model card (weights/*.md) into DOM nodes. It knows a
// small subset of markdown: ATX headings, paragraphs, pipe tables, bullet and
// numbered lists, fenced and indented code, block quotes, rules, and inline
// code, **bold**, *italic*, [links](url) and ![images](url). A line that is
// one whole HTML comment (`<!-- … -->`, e.g. the markers around generated
// tables) is skipped, as markdown renderers do. It never parses
// HTML: every other character of the card ends up as text (createTextNode /
// textContent), so markup in a card shows as written. Links keep only
// http(s), mailto and relative targets; images load only from the page's
// own origin (anything else is shown as a link to it, not fetched).

const SAFE_LINK = /^(https?:|mailto:)/i;

function resolveURL(href, base) {
  try {
    return new URL(href, base || document.baseURI);
  } catch {
    return null;
  }
}

/** Inline markdown of one line (or joined lines) into nodes appended to parent. */
function inline(parent, text, base) {
  let buf = '';
  const flush = () => { if (buf) { parent.append(document.createTextNode(buf)); buf = ''; } };
  const wordChar = (c) => !!c && /[\p{L}\p{N}]/u.test(c);
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && /[\\`*_{}[\]()#+\-.!|<>~]/.test(text[i + 1])) {
      buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      let n = 1;
      while (text[i + n] === '`') n++;
      const fence = '`'.repeat(n);
      const end = text.indexOf(fence, i + n);
      if (end > 0) {
        flush();
        const code = document.createElement('code');
        code.textContent = text.slice(i + n, end).replace(/^ (.*) $/, '$1');
        parent.append(code);
        i = end + n;
        continue;
      }
      buf += fence;
      i += n;
      continue;
    }
    const link = c === '[' || (c === '!' && text[i + 1] === '[') ? parseLink(text, c === '!' ? i + 1 : i) : null;
    if (link) {
      flush();
      const url = resolveURL(link.href, base);
      if (c === '!') {
        if (url && url.origin === location.origin && /^https?:$/.test(url.protocol)) {
          const img = document.createElement('img');
          img.src = url.href;
          img.alt = link.text;
          if (link.title) img.title = link.title;
          parent.append(img);
        } else {
          // Nothing is fetched from another origin: the picture becomes a link.
          appendLink(parent, url, `${link.text || 'image'} (image on another site, not loaded)`, base);
        }
      } else {
        appendLink(parent, url, null, base, link.text);
      }
      i = link.end;
      continue;
    }
    if (c === '<') {
      const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(text.slice(i));
      if (m) {
        flush();
        appendLink(parent, resolveURL(m[1], base), m[1], base);
        i += m[0].length;
        continue;
      }
    }
    if ((c === '*' || c === '_') && text[i + 1] === c) {
      const end = text.indexOf(c + c, i + 2);
      if (end > i + 2 && text[i + 2] !== ' ' && text[end - 1] !== ' ' && (c === '*' || (!wordChar(text[i - 1]) && !wordChar(text[end + 2])))) {
        flush();
        const b = document.createElement('strong');
        inline(b, text.slice(i + 2, end), base);
        parent.append(b);
        i = end + 2;
        continue;
      }
    }
    if ((c === '*' || c === '_') && text[i + 1] && text[i + 1] !== ' ' && text[i + 1] !== c && (c === '*' || !wordChar(text[i - 1]))) {
      let end = i + 1;
      for (;;) {
        end = text.indexOf(c, end);
        if (end < 0) break;
        if (text[end - 1] !== ' ' && text[end + 1] !== c && (c === '*' || !wordChar(text[end + 1]))) break;
        end++;
      }
      if (end > i + 1) {
        flush();
        const em = document.createElement('em');
        inline(em, text.slice(i + 1, end), base);
        parent.append(em);
        i = end + 1;
        continue;
      }
    }
    buf += c;
    i++;
  }
  flush();
}

/** A [text](href "title") at text[i] ('['): {text, href, title, end} or null. */
function parseLink(text, i) {
  let depth = 0;
  let j = i;
  for (; j < text.length; j++) {
    if (text[j] === '\\') { j++; continue; }
    if (text[j] === '[') depth++;
    else if (text[j] === ']' && --depth === 0) break;
  }
  if (j >= text.length || text[j + 1] !== '(') return null;
  const m = /^\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+"([^"]*)")?\s*\)/.exec(text.slice(j + 1));
  if (!m) return null;
  return { text: text.slice(i + 1, j), href: m[1].replace(/^<|>$/g, ''), title: m[2] || '', end: j + 1 + m[0].length };
}

function appendLink(parent, url, label, base, inlineText) {
  const raw = url ? url.href : '';
  if (!url || !(SAFE_LINK.test(url.protocol))) {
    // javascript:, data: and the like: the text only.
    if (inlineText !== undefined) inline(parent, inlineText, base);
    else parent.append(document.createTextNode(label || ''));
    return;
  }
  const a = document.createElement('a');
  a.href = raw;
  if (url.origin !== location.origin) {
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
  }
  if (inlineText !== undefined) inline(a, inlineText, base);
  else a.textContent = label;
  parent.append(a);
}

/** The cells of a table row: split on | outside code spans (\| is a bar). */
function tableCells(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  let code = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && s[i + 1] === '|') { cur += '|'; i++; continue; }
    if (c === '`') {
      let n = 1;
      while (s[i + n] === '`') n++;
      code = code === n ? 0 : code || n;
      cur += '`'.repeat(n);
      i += n - 1;
      continue;
    }
    if (c === '|' && !code) { cells.push(cur.trim()); cur = ''; continue; }
    cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

const TABLE_RULE = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+-]*)/;

/** Renders markdown text as a DocumentFragment (see above). base: the URL
 * the card's relative links and images are resolved against. headingShift
 * moves heading levels down (1: "#" becomes h2). */
export function renderMarkdown(text, { base, headingShift = 0 } = {}) {
  const frag = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  const isBlank = (l) => /^\s*$/.test(l);
  const isComment = (l) => /^\s{0,3}<!--(?:(?!-->).)*-->\s*$/.test(l);
  const startsBlock = (l, next) => isComment(l) || FENCE.test(l) || /^\s{0,3}#{1,6}(\s|$)/.test(l) || /^\s{0,3}>/.test(l) ||
    LIST_ITEM.test(l) || /^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(l) || (l.includes('|') && next !== undefined && TABLE_RULE.test(next) && next.includes('-'));
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line) || isComment(line)) { i++; continue; }
    let m = FENCE.exec(line);
    if (m) {
      const close = new RegExp(`^\\s{0,3}${m[1][0] === '`' ? '`' : '~'}{${m[1].length},}\\s*$`);
      const body = [];
      i++;
      while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
      i++;
      const pre = document.createElement('pre');
      const code = document.createElement('code');
      if (m[2]) code.dataset.lang = m[2];
      code.textContent = body.join('\n');
      pre.append(code);
      frag.append(pre);
      continue;
    }
    if (/^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || (isBlank(lines[i]) && /^( {4}|\t)/.test(lines[i + 1] || '')))) {
        body.push(lines[i++].replace(/^( {4}|\t)/, ''));
      }
      const pre = document.createElement('pre');
      const code = document.createElement('code');
      code.textContent = body.join('\n');
      pre.append(code);
      frag.append(pre);
      continue;
    }
    m = /^\s{0,3}(#{1,6})\s*(.*?)\s*#*\s*$/.exec(line);
    if (m && /^\s{0,3}#{1,6}(\s|$)/.test(line)) {
      const h = document.createElement(`h${Math.min(6, m[1].length + headingShift)}`);
      inline(h, m[2], base);
      frag.append(h);
      i++;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      frag.append(document.createElement('hr'));
      i++;
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const head = tableCells(line);
      const aligns = tableCells(lines[i + 1]).map((c) => (/^:-+:$/.test(c) ? 'center' : /-:$/.test(c) ? 'right' : ''));
      i += 2;
      const wrap = document.createElement('div');
      wrap.className = 'md-table';
      const table = document.createElement('table');
      if (head.some((c) => c !== '')) {
        const thead = document.createElement('thead');
        const tr = document.createElement('tr');
        head.forEach((c, k) => {
          const th = document.createElement('th');
          if (aligns[k]) th.style.textAlign = aligns[k];
          inline(th, c, base);
          tr.append(th);
        });
        thead.append(tr);
        table.append(thead);
      }
      const tbody = document.createElement('tbody');
      while (i < lines.length && !isBlank(lines[i]) && lines[i].includes('|')) {
        const tr = document.createElement('tr');
        const cells = tableCells(lines[i]);
        for (let k = 0; k < Math.max(head.length, 1); k++) {
          const td = document.createElement('td');
          if (aligns[k]) td.style.textAlign = aligns[k];
          inline(td, cells[k] ?? '', base);
          tr.append(td);
        }
        tbody.append(tr);
        i++;
      }
      table.append(tbody);
      wrap.append(table);
      frag.append(wrap);
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const body = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) body.push(lines[i++].replace(/^\s{0,3}>\s?/, ''));
      const q = document.createElement('blockquote');
      q.append(renderMarkdown(body.join('\n'), { base, headingShift }));
      frag.append(q);
      continue;
    }
    m = LIST_ITEM.exec(line);
    if (m) {
      const ordered = /\d/.test(m[2]);
      const list = document.createElement(ordered ? 'ol' : 'ul');
      if (ordered && parseInt(m[2], 10) !== 1) list.start = parseInt(m[2], 10);
      const indent = m[1].length;
      while (i < lines.length) {
        const it = LIST_ITEM.exec(lines[i]);
        if (!it || /\d/.test(it[2]) !== ordered || it[1].length > indent + 1) break;
        const parts = [it[3]];
        i++;
        // Continuation lines (indented, or lazy ones that start no block).
        while (i < lines.length && !isBlank(lines[i]) && !LIST_ITEM.exec(lines[i]) && !startsBlock(lines[i], lines[i + 1])) parts.push(lines[i++].trim());
        const li = document.createElement('li');
        inline(li, parts.join(' '), base);
        // A nested list (deeper indentation) belongs to this item.
        if (i < lines.length) {
          const sub = LIST_ITEM.exec(lines[i]);
          if (sub && sub[1].length > indent + 1) {
            const nested = [];
            while (i < lines.length && !isBlank(lines[i]) && (/^\s/.test(lines[i]))) nested.push(lines[i++].slice(indent + 2));
            li.append(renderMarkdown(nested.join('\n'), { base, headingShift }));
          }
        }
        list.append(li);
        if (i < lines.length && isBlank(lines[i]) && LIST_ITEM.test(lines[i + 1] || '')) i++; // a loose list
      }
      frag.append(list);
      continue;
    }
    // A paragraph: lines up to a blank line or the start of another block.
    const para = [line];
    i++;
    while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines[i], lines[i + 1])) para.push(lines[i++]);
    // Lines join with spaces (a code span or a link may run over a line
    // break); two trailing spaces or a backslash make a hard break.
    const p = document.createElement('p');
    let seg = [];
    para.forEach((l, k) => {
      const hard = k < para.length - 1 && (/ {2,}$/.test(l) || /\\$/.test(l));
      seg.push(l.replace(/\\$/, '').trim());
      if (hard || k === para.length - 1) {
        inline(p, seg.join(' '), base);
        if (hard) p.append(document.createElement('br'));
        seg = [];
      }
    });
    frag.append(p);
  }
  return frag;
}
