// ONNX files without their weights, rebuilt from our .safetensors at bench
// time. A "slim" ONNX is the exported graph whose initializers that equal one
// of the model's safetensors tensors (upcast to fp32, as export_onnx.py
// writes them; or its 2-D transpose, as the exporter folds Linear weights into
// MatMul) are marked as ONNX external data in one file, <model>.weights;
// the recipe (<model>.slim.json) says how to rebuild that file from the
// safetensors. So ORT runs exactly the weights our backends run, and a slim
// model travels in kilobytes (make bench-gpu on a machine the 30 MB ONNX
// cannot reach). onnxruntime-web takes the rebuilt file through the session
// option externalData.
//
//   node tools/bench/onnxweights.mjs slim weights/emoji.safetensors tools/bench/onnx/emoji.onnx
//        -> tools/bench/onnx/emoji.slim.onnx and emoji.slim.json
//
// Protobuf handling is the minimum ONNX needs here: ModelProto.graph (7) ->
// GraphProto.initializer (5) -> TensorProto dims (1), data_type (2), name (8),
// raw_data (9), external_data (13), data_location (14).

function varint(b, p) {
  let r = 0;
  let m = 1;
  for (;;) {
    const x = b[p++];
    r += (x & 0x7f) * m;
    m *= 128;
    if (!(x & 0x80)) return [r, p];
  }
}

function encVarint(n) {
  const out = [];
  do {
    let x = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) x |= 0x80;
    out.push(x);
  } while (n > 0);
  return Buffer.from(out);
}

// fields returns each field's number, wire type, payload [s,e) and whole
// encoding [t,e) (tag included).
function fields(b, start, end) {
  const out = [];
  let p = start;
  while (p < end) {
    const t = p;
    let key;
    [key, p] = varint(b, p);
    const f = Math.floor(key / 8);
    const w = key & 7;
    if (w === 0) {
      let v;
      const s = p;
      [v, p] = varint(b, p);
      out.push({ f, w, v, s, e: p, t });
    } else if (w === 2) {
      let l;
      [l, p] = varint(b, p);
      out.push({ f, w, s: p, e: p + l, t });
      p += l;
    } else if (w === 5) {
      out.push({ f, w, s: p, e: p + 4, t });
      p += 4;
    } else if (w === 1) {
      out.push({ f, w, s: p, e: p + 8, t });
      p += 8;
    } else {
      throw new Error(`onnx: unsupported protobuf wire type ${w}`);
    }
  }
  return out;
}

const lenField = (f, payload) => Buffer.concat([encVarint(f * 8 + 2), encVarint(payload.length), payload]);
const varField = (f, v) => Buffer.concat([encVarint(f * 8), encVarint(v)]);
const str = (s) => Buffer.from(s, 'utf8');

/** Reads a safetensors file: {name: {dtype, shape, data: Uint8Array}}. */
export function readSafetensors(b) {
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  const out = {};
  for (const [k, v] of Object.entries(h)) {
    if (k === '__metadata__') continue;
    out[k] = { dtype: v.dtype, shape: v.shape, data: b.subarray(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1]) };
  }
  return out;
}

function f16(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The tensor as fp32 bytes (F16, BF16 and F32 sources). */
export function fp32(t) {
  const n = t.shape.reduce((a, c) => a * c, 1);
  const out = new Float32Array(n);
  const d = t.data;
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  for (let i = 0; i < n; i++) {
    if (t.dtype === 'F16') out[i] = f16(dv.getUint16(2 * i, true));
    else if (t.dtype === 'BF16') { const u = new DataView(new ArrayBuffer(4)); u.setUint32(0, dv.getUint16(2 * i, true) << 16, true); out[i] = u.getFloat32(0, true); }
    else if (t.dtype === 'F32') out[i] = dv.getFloat32(4 * i, true);
    else throw new Error(`unsupported dtype ${t.dtype}`);
  }
  return new Uint8Array(out.buffer);
}

function transpose2(bytes, r, c) {
  const a = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const o = new Float32Array(a.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) o[j * r + i] = a[i * c + j];
  return new Uint8Array(o.buffer);
}

/** Makes the slim ONNX: returns {onnx: Buffer, recipe}. */
export function slim(onnxBytes, stBytes, dataName) {
  const b = Buffer.from(onnxBytes.buffer, onnxBytes.byteOffset, onnxBytes.byteLength);
  const st = readSafetensors(stBytes);
  const cand = new Map(); // byte length -> [{name, variants}]
  for (const [name, t] of Object.entries(st)) {
    const n = t.shape.reduce((a, c) => a * c, 1);
    if (!cand.has(4 * n)) cand.set(4 * n, []);
    cand.get(4 * n).push({ name, t });
  }
  const cache = new Map();
  const variant = (c, tr) => {
    const k = `${c.name}/${tr}`;
    if (!cache.has(k)) {
      const d = fp32(c.t);
      cache.set(k, tr ? transpose2(d, c.t.shape[0], c.t.shape.slice(1).reduce((a, x) => a * x, 1)) : d);
    }
    return cache.get(k);
  };
  const top = fields(b, 0, b.length);
  const recipe = { data: dataName, tensors: [], inline: 0, external: 0 };
  let offset = 0;
  const parts = [];
  for (const f of top) {
    if (f.f !== 7) { parts.push(b.subarray(f.t, f.e)); continue; }
    const gparts = [];
    for (const g of fields(b, f.s, f.e)) {
      if (g.f !== 5) { gparts.push(b.subarray(g.t, g.e)); continue; }
      const tf = fields(b, g.s, g.e);
      const raw = tf.find((x) => x.f === 9);
      const dt = tf.find((x) => x.f === 2)?.v;
      const name = b.toString('utf8', ...(() => { const x = tf.find((y) => y.f === 8); return [x.s, x.e]; })());
      let hit = null;
      if (raw && dt === 1 && raw.e - raw.s >= 64) {
        const data = b.subarray(raw.s, raw.e);
        for (const c of cand.get(data.length) || []) {
          for (const tr of c.t.shape.length >= 2 ? [false, true] : [false]) {
            if (Buffer.compare(Buffer.from(variant(c, tr)), data) === 0) { hit = { tensor: c.name, transpose: tr }; break; }
          }
          if (hit) break;
        }
      }
      if (!hit) {
        recipe.inline += raw ? raw.e - raw.s : 0;
        gparts.push(b.subarray(g.t, g.e));
        continue;
      }
      const len = raw.e - raw.s;
      recipe.tensors.push({ name, ...hit, offset, length: len });
      const keep = tf.filter((x) => x.f !== 9 && x.f !== 13 && x.f !== 14).map((x) => b.subarray(x.t, x.e));
      const ext = [['location', dataName], ['offset', String(offset)], ['length', String(len)]]
        .map(([k, v]) => lenField(13, Buffer.concat([lenField(1, str(k)), lenField(2, str(v))])));
      gparts.push(lenField(5, Buffer.concat([...keep, ...ext, varField(14, 1)])));
      offset += len;
      recipe.external += len;
    }
    parts.push(lenField(7, Buffer.concat(gparts)));
  }
  recipe.size = offset;
  return { onnx: Buffer.concat(parts), recipe };
}

/** Rebuilds the external weights file of a slim ONNX from the safetensors. */
export function weightsFile(recipe, stBytes) {
  const st = readSafetensors(stBytes);
  const out = new Uint8Array(recipe.size);
  for (const r of recipe.tensors) {
    const t = st[r.tensor];
    if (!t) throw new Error(`slim ONNX wants tensor ${r.tensor}, not in the safetensors`);
    let d = fp32(t);
    if (r.transpose) d = transpose2(d, t.shape[0], t.shape.slice(1).reduce((a, x) => a * x, 1));
    if (d.length !== r.length) throw new Error(`${r.tensor}: ${d.length} bytes, recipe says ${r.length}`);
    out.set(d, r.offset);
  }
  return out;
}

// The command line (Node only): `slim [weights.safetensors model.onnx]`;
// with no files, every tools/bench/onnx/<m>.onnx that has weights/<m>.safetensors.
if (typeof process !== 'undefined' && process.argv?.[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()) && process.argv[2] === 'slim') {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
  let pairs = [];
  if (process.argv.length > 4) pairs.push(process.argv.slice(3, 5));
  else {
    const dir = process.env.BENCH_ONNX || path.join(root, 'tools', 'bench', 'onnx');
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      if (!f.endsWith('.onnx') || f.endsWith('.slim.onnx')) continue;
      const st = path.join(root, 'weights', f.replace(/\.onnx$/, '.safetensors'));
      if (fs.existsSync(st)) pairs.push([st, path.join(dir, f)]);
    }
    if (!pairs.length) { console.error(`no ONNX files in ${dir}: run /usr/bin/python3 tools/bench/export_onnx.py first`); process.exit(1); }
  }
  for (const [st, onnx] of pairs) {
    const model = path.basename(onnx, '.onnx');
    const { onnx: out, recipe } = slim(fs.readFileSync(onnx), fs.readFileSync(st), `${model}.weights`);
    const base = path.join(path.dirname(onnx), `${model}.slim`);
    fs.writeFileSync(`${base}.onnx`, out);
    fs.writeFileSync(`${base}.json`, JSON.stringify(recipe));
    console.log(`${path.relative(root, base)}.onnx: ${out.length} bytes; ${recipe.tensors.length} initializers (${(recipe.external / 1e6).toFixed(2)} MB) equal to ${path.basename(st)}'s tensors, ${(recipe.inline / 1e3).toFixed(1)} kB left inline`);
  }
}
