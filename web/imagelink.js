// Images and masks as text, for share links (app.js) and the
// <diffusion-sampler> `image`/`mask` attributes: the one codec for both.
//
// A value v in the data range [lo, hi] is kept as the byte
// q = round((v − lo) / (hi − lo) · 255) and read back as lo + q/255·(hi − lo),
// the formula the lab uses for a drawing's pixels, so a drawn (or uploaded)
// picture survives the trip bit for bit. The bytes, after a format byte
// (1), are run-length coded with PackBits (Apple Technical Note TN1023:
// a header n in 0…127 is followed by n+1 literal bytes, n in 129…255 by one
// byte repeated 257−n times; 128 is skipped) and written in base64url
// (RFC 4648 §5, no padding). A black digit with a few strokes is 150–400
// characters; a photo at most 1/128 larger than its raw bytes.
//
// Decoding is for text from strangers: its length is capped before
// anything is decoded, the output has exactly the length the model needs
// (a run past it is refused as it is read), and the work is linear in the
// text, so a hostile link fails at once with a message, never hangs.

/** The longest image or mask text accepted (characters): a 64×64 RGB
 * photo at worst is about 16,600. */
export const MAX_TEXT = 65536;

const FORMAT = 1;
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** An image or mask text that cannot be read: the message says why. */
export class ImageTextError extends Error {}

function toByte(v, lo, hi) {
  const q = Math.round(((v - lo) / (hi - lo)) * 255);
  return q > 255 ? 255 : q >= 0 ? q : 0; // NaN → 0
}

function fromByte(q, lo, hi) { return lo + (q / 255) * (hi - lo); }

/** Rounds values (in place) to what a text can carry, so a run from them
 * and a run from their link see the same numbers. Returns values. */
export function quantize(values, [lo, hi]) {
  for (let i = 0; i < values.length; i++) values[i] = fromByte(toByte(values[i], lo, hi), lo, hi);
  return values;
}

/** PackBits (TN1023) of bytes. */
function packBits(b) {
  const out = [];
  let i = 0;
  while (i < b.length) {
    let run = 1;
    while (i + run < b.length && run < 128 && b[i + run] === b[i]) run++;
    if (run >= 2) { // 2 or more equal bytes: a repeat run
      out.push(257 - run, b[i]);
      i += run;
      continue;
    }
    // literals up to the next run of 3 (a run of 2 inside literals costs the same)
    let j = i + 1;
    while (j < b.length && j - i < 128 && !(j + 2 < b.length && b[j] === b[j + 1] && b[j] === b[j + 2])) j++;
    out.push(j - i - 1);
    for (let k = i; k < j; k++) out.push(b[k]);
    i = j;
  }
  return out;
}

function base64url(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let k = 0; k < chars; k++) s += B64[(n >> (18 - 6 * k)) & 63];
  }
  return s;
}

function fromBase64url(s, what) {
  if (s.length % 4 === 1) throw new ImageTextError(`${what}: the text is cut off (${s.length} characters)`);
  const out = new Uint8Array(Math.floor((s.length * 6) / 8));
  let acc = 0, bits = 0, o = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c >= 65 && c <= 90 ? c - 65 : c >= 97 && c <= 122 ? c - 71 : c >= 48 && c <= 57 ? c + 4 : c === 45 ? 62 : c === 95 ? 63 : -1;
    if (v < 0) throw new ImageTextError(`${what}: "${s[i]}" at character ${i + 1} is not base64url (A–Z, a–z, 0–9, - and _)`);
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) { bits -= 8; out[o++] = (acc >> bits) & 255; }
  }
  return out;
}

/** The text of values (a Float32Array or array) in the data range. */
export function packValues(values, [lo, hi]) {
  const b = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) b[i] = toByte(values[i], lo, hi);
  return base64url([FORMAT, ...packBits(b)]);
}

/** The n values of a text (a Float32Array), or an ImageTextError naming
 * `what` ("image", "mask") and what is wrong. */
export function unpackValues(text, n, [lo, hi], what = 'image') {
  if (typeof text !== 'string' || text === '') throw new ImageTextError(`${what}: empty`);
  if (text.length > MAX_TEXT) throw new ImageTextError(`${what}: ${text.length} characters, more than the ${MAX_TEXT} a link may carry`);
  if (!(n > 0 && n <= 4 * MAX_TEXT * 128)) throw new ImageTextError(`${what}: a model of ${n} values cannot take an image from a link`);
  const b = fromBase64url(text, what);
  if (b[0] !== FORMAT) throw new ImageTextError(`${what}: unknown format ${b[0]} (this page reads format ${FORMAT})`);
  const out = new Float32Array(n);
  let o = 0, i = 1;
  const over = () => new ImageTextError(`${what}: more than ${n} values (the model's ${n})`);
  while (i < b.length) {
    const h = b[i++];
    if (h === 128) continue;
    if (h < 128) {
      if (i + h + 1 > b.length) throw new ImageTextError(`${what}: the text ends inside a run`);
      if (o + h + 1 > n) throw over();
      for (let k = 0; k <= h; k++) out[o++] = fromByte(b[i++], lo, hi);
    } else {
      if (i >= b.length) throw new ImageTextError(`${what}: the text ends inside a run`);
      const r = 257 - h;
      if (o + r > n) throw over();
      const v = fromByte(b[i++], lo, hi);
      for (let k = 0; k < r; k++) out[o++] = v;
    }
  }
  if (o !== n) throw new ImageTextError(`${what}: ${o} values, the model takes ${n}`);
  return out;
}
