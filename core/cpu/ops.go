package cpu

import (
	"math"
)

// Conv2D computes a cross-correlation (PyTorch's Conv2d, groups 1, dilation 1)
// of x [B,I,H,W] with w [O,I,KH,KW], plus bias [O] if non-nil, with the given
// stride and zero padding (top, left, bottom, right), into out [B,O,OH,OW].
//
// It unfolds the input into columns (im2col: row k = (i,ky,kx) holds, for
// every output pixel, the input pixel that weight k multiplies, 0 in the
// padding) and then computes out[o,:] = bias[o] + Σ_k w[o,k]·col[k,:], so the
// inner loop runs over long contiguous rows.
func Conv2D(out, x []float32, xs []int, w []float32, ws []int, bias []float32, stride int, pad [4]int, os []int) {
	B, I, H, W := xs[0], xs[1], xs[2], xs[3]
	O, KH, KW := ws[0], ws[2], ws[3]
	OH, OW := os[2], os[3]
	K, P := I*KH*KW, OH*OW
	col := make([]float32, K*P)
	for b := 0; b < B; b++ {
		parallelFor(K, func(k int) {
			i, ky, kx := k/(KH*KW), k/KW%KH, k%KW
			src := x[(b*I+i)*H*W : (b*I+i+1)*H*W]
			row := col[k*P : (k+1)*P]
			for oy := 0; oy < OH; oy++ {
				iy := oy*stride - pad[0] + ky
				for ox := 0; ox < OW; ox++ {
					ix := ox*stride - pad[1] + kx
					v := float32(0)
					if iy >= 0 && iy < H && ix >= 0 && ix < W {
						v = src[iy*W+ix]
					}
					row[oy*OW+ox] = v
				}
			}
		})
		parallelFor(O, func(o int) {
			dst := out[(b*O+o)*P : (b*O+o+1)*P]
			init := float32(0)
			if bias != nil {
				init = bias[o]
			}
			for p := range dst {
				dst[p] = init
			}
			wr := w[o*K : (o+1)*K]
			k := 0
			for ; k+4 <= K; k += 4 { // four rows at a time: a quarter of the loads and stores of dst
				w0, w1, w2, w3 := wr[k], wr[k+1], wr[k+2], wr[k+3]
				c0, c1, c2, c3 := col[k*P:(k+1)*P], col[(k+1)*P:(k+2)*P], col[(k+2)*P:(k+3)*P], col[(k+3)*P:(k+4)*P]
				for p := range dst {
					dst[p] += w0*c0[p] + w1*c1[p] + w2*c2[p] + w3*c3[p]
				}
			}
			for ; k < K; k++ {
				wk, ck := wr[k], col[k*P:(k+1)*P]
				for p := range dst {
					dst[p] += wk * ck[p]
				}
			}
		})
	}
}

// ConvTranspose2D is PyTorch's ConvTranspose2d (groups 1, dilation 1): x
// [B,I,H,W], w [I,O,KH,KW]; input pixel (iy,ix) scatters into output
// (iy*stride - padding + ky, ix*stride - padding + kx). outPad only enlarges
// the output, which os already reflects.
func ConvTranspose2D(out, x []float32, xs []int, w []float32, ws []int, bias []float32, stride, padding int, os []int) {
	B, I, H, W := xs[0], xs[1], xs[2], xs[3]
	O, KH, KW := ws[1], ws[2], ws[3]
	OH, OW := os[2], os[3]
	parallelFor(B*O, func(bo int) {
		b, o := bo/O, bo%O
		dst := out[bo*OH*OW : (bo+1)*OH*OW]
		init := float32(0)
		if bias != nil {
			init = bias[o]
		}
		for i := range dst {
			dst[i] = init
		}
		for i := 0; i < I; i++ {
			src := x[(b*I+i)*H*W : (b*I+i+1)*H*W]
			for ky := 0; ky < KH; ky++ {
				for kx := 0; kx < KW; kx++ {
					wv := w[((i*O+o)*KH+ky)*KW+kx]
					for iy := 0; iy < H; iy++ {
						oy := iy*stride - padding + ky
						if oy < 0 || oy >= OH {
							continue
						}
						for ix := 0; ix < W; ix++ {
							ox := ix*stride - padding + kx
							if ox >= 0 && ox < OW {
								dst[oy*OW+ox] += wv * src[iy*W+ix]
							}
						}
					}
				}
			}
		}
	})
}

// GroupNorm normalises x [B,C,...] over each group of C/groups channels and
// all positions (Wu & He 2018), statistics in float64, then applies the
// per-channel affine weight and bias (bias may be nil).
func GroupNorm(out, x []float32, xs []int, groups int, eps float64, weight, bias []float32) {
	B, C := xs[0], xs[1]
	per := 1
	for _, d := range xs[2:] {
		per *= d
	}
	cg := C / groups
	parallelFor(B*groups, func(bg int) {
		b, gi := bg/groups, bg%groups
		start := (b*C + gi*cg) * per
		seg := x[start : start+cg*per]
		var sum float64
		for _, v := range seg {
			sum += float64(v)
		}
		mean := sum / float64(len(seg))
		var sq float64
		for _, v := range seg {
			d := float64(v) - mean
			sq += d * d
		}
		inv := 1 / math.Sqrt(sq/float64(len(seg))+eps)
		for c := 0; c < cg; c++ {
			ch := gi*cg + c
			a := inv * float64(weight[ch])
			o := -mean * a
			if bias != nil {
				o += float64(bias[ch])
			}
			for p := 0; p < per; p++ {
				i := c*per + p
				out[start+i] = float32(float64(seg[i])*a + o)
			}
		}
	})
}

// Linear computes out[r,o] = bias[o] + Σ_i x[r,i]·w[o,i] for every row r.
func Linear(out, x, w, bias []float32, in, outDim int) {
	rows := len(x) / in
	parallelFor(rows, func(r int) {
		xr := x[r*in : (r+1)*in]
		for o := 0; o < outDim; o++ {
			wr := w[o*in : (o+1)*in]
			var s float32
			for i, v := range xr {
				s += v * wr[i]
			}
			if bias != nil {
				s += bias[o]
			}
			out[r*outDim+o] = s
		}
	})
}

// Attention is multi-head scaled dot-product attention (Vaswani et al. 2017):
// for each batch and head, softmax(q kᵀ·scale) v over N tokens; q, k, v and
// out are [B,N,C] with C = heads·D and head h owning channels [hD, (h+1)D).
func Attention(out, q, k, v []float32, B, N, C, heads int, scale float32) {
	D := C / heads
	parallelFor(B*heads, func(bh int) {
		b, h := bh/heads, bh%heads
		base := b * N * C
		p := make([]float64, N)
		for i := 0; i < N; i++ {
			qi := q[base+i*C+h*D : base+i*C+h*D+D]
			maxv := math.Inf(-1)
			for j := 0; j < N; j++ {
				kj := k[base+j*C+h*D : base+j*C+h*D+D]
				var s float32
				for d, qv := range qi {
					s += qv * kj[d]
				}
				p[j] = float64(s * scale)
				maxv = math.Max(maxv, p[j])
			}
			var sum float64
			for j := range p {
				p[j] = math.Exp(p[j] - maxv)
				sum += p[j]
			}
			o := out[base+i*C+h*D : base+i*C+h*D+D]
			for d := range o {
				o[d] = 0
			}
			for j := 0; j < N; j++ {
				wj := float32(p[j] / sum)
				vj := v[base+j*C+h*D : base+j*C+h*D+D]
				for d := range o {
					o[d] += wj * vj[d]
				}
			}
		}
	})
}

// TimestepEmbed is the sinusoidal timestep embedding of DDPM (Ho et al. 2020,
// after Vaswani et al. 2017) with diffusers' conventions (get_timestep_embedding
// in diffusers/models/embeddings.py): frequency i of dim/2 is
// exp(-ln(10000)·i/(dim/2 - freqShift)); the output is [sin | cos], or
// [cos | sin] with flip, zero-padded when dim is odd. Arithmetic follows
// PyTorch's float32 steps so results agree to rounding.
func TimestepEmbed(out, t []float32, dim int, flip bool, freqShift, scale float64) {
	half := dim / 2
	freqs := make([]float32, half)
	for i := range freqs {
		e := float32(-math.Log(10000)) * float32(i) / float32(float64(half)-freqShift)
		freqs[i] = float32(math.Exp(float64(e)))
	}
	for b, tv := range t {
		row := out[b*dim : (b+1)*dim]
		for i, f := range freqs {
			arg := float64(float32(scale) * (tv * f))
			s, c := float32(math.Sin(arg)), float32(math.Cos(arg))
			if flip {
				row[i], row[half+i] = c, s
			} else {
				row[i], row[half+i] = s, c
			}
		}
		if dim%2 == 1 {
			row[dim-1] = 0
		}
	}
}

// FourierEmbed is the Gaussian Fourier feature embedding (Tancik et al. 2020;
// used for time by Song et al. 2021): [sin(2π·x·W) | cos(2π·x·W)] with
// x = log(t) when logInput (diffusers' GaussianFourierProjection), else t.
func FourierEmbed(out, t, w []float32, logInput, cosFirst bool) {
	d := len(w)
	for b, tv := range t {
		x := tv
		if logInput {
			x = float32(math.Log(float64(tv)))
		}
		row := out[b*2*d : (b+1)*2*d]
		for i, wv := range w {
			arg := float64(x * wv * float32(2*math.Pi))
			s, c := float32(math.Sin(arg)), float32(math.Cos(arg))
			if cosFirst {
				row[i], row[d+i] = c, s
			} else {
				row[i], row[d+i] = s, c
			}
		}
	}
}
