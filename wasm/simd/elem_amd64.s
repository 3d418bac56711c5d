//go:build !purego

#include "textflag.h"

// Vector loops of the native Go kernel set (AVX2 + FMA, 8 floats per
// step; the callers do the n%8 tail in Go): the exp of kernels.wasm
// (kernelgen's expv: range reduction, degree-7 Taylor polynomial in
// Estrin's scheme, 2^n built in the exponent field), SiLU, GroupNorm's
// normalisation and the softmax's exponentials.

// SPLAT8 defines name as a ymm constant: eight copies of the float32 bits v.
#define SPLAT8(name, v) \
	DATA name+0(SB)/4, v \
	DATA name+4(SB)/4, v \
	DATA name+8(SB)/4, v \
	DATA name+12(SB)/4, v \
	DATA name+16(SB)/4, v \
	DATA name+20(SB)/4, v \
	DATA name+24(SB)/4, v \
	DATA name+28(SB)/4, v \
	GLOBL name(SB), RODATA|NOPTR, $32

SPLAT8(expLo<>, $0xc2ae0000)
SPLAT8(expHi<>, $0x42b00000)
SPLAT8(expL2e<>, $0x3fb8aa3b)
SPLAT8(expMag<>, $0x4b40007f)
SPLAT8(expNl2h<>, $0xbf318000)
SPLAT8(expNl2l<>, $0x395e8083)
SPLAT8(expOne<>, $0x3f800000)
SPLAT8(expC2<>, $0x3f000000)
SPLAT8(expC6<>, $0x3e2aaaab)
SPLAT8(expC24<>, $0x3d2aaaab)
SPLAT8(expC120<>, $0x3c088889)
SPLAT8(expC720<>, $0x3ab60b61)
SPLAT8(expC5040<>, $0x39500d01)
SPLAT8(expM80<>, $0xc2a00000)
SPLAT8(expSign<>, $0x80000000)

// EXP sets Y0 = e^Y0 (x clamped to [-87, 88]); Y1-Y7 are clobbered.
#define EXP \
	VMAXPS expLo<>(SB), Y0, Y0 \
	VMINPS expHi<>(SB), Y0, Y0 \
	VMOVUPS expL2e<>(SB), Y1 \
	VFMADD213PS expMag<>(SB), Y0, Y1 \
	VSUBPS expMag<>(SB), Y1, Y2 \
	VMOVAPS Y0, Y3 \
	VFMADD231PS expNl2h<>(SB), Y2, Y3 \
	VFMADD231PS expNl2l<>(SB), Y2, Y3 \
	VMULPS Y3, Y3, Y4 \
	VMOVUPS expC6<>(SB), Y5 \
	VFMADD213PS expC2<>(SB), Y3, Y5 \
	VADDPS expOne<>(SB), Y3, Y6 \
	VFMADD231PS Y5, Y4, Y6 \
	VMOVUPS expC5040<>(SB), Y5 \
	VFMADD213PS expC720<>(SB), Y3, Y5 \
	VMOVUPS expC120<>(SB), Y7 \
	VFMADD213PS expC24<>(SB), Y3, Y7 \
	VFMADD231PS Y5, Y4, Y7 \
	VMULPS Y4, Y4, Y4 \
	VFMADD231PS Y7, Y4, Y6 \
	VPSLLD $23, Y1, Y1 \
	VMULPS Y1, Y6, Y0

// func normAVX2(dst, src *float32, n int, mhi, mlo, a, o float32, silu int)
// dst[i] = ((src[i]-mhi)-mlo)·a + o, then SiLU when silu != 0; n % 8 == 0.
TEXT ·normAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS mhi+24(FP), Y10
	VBROADCASTSS mlo+28(FP), Y11
	VBROADCASTSS a+32(FP), Y12
	VBROADCASTSS o+36(FP), Y13
	MOVQ silu+40(FP), DX
	SHRQ $3, CX
	JZ normdone
normloop:
	VMOVUPS (SI), Y0
	VSUBPS Y10, Y0, Y0
	VSUBPS Y11, Y0, Y0
	VMULPS Y12, Y0, Y0
	VADDPS Y13, Y0, Y0
	TESTQ DX, DX
	JZ normstore
	VMOVAPS Y0, Y8
	VXORPS expSign<>(SB), Y0, Y0
	EXP
	VADDPS expOne<>(SB), Y0, Y0
	VDIVPS Y0, Y8, Y0
normstore:
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ normloop
normdone:
	VZEROUPPER
	RET

// func expAVX2(dst, src *float32, n int, scale, off float32) float32
// dst[i] = e^(src[i]·scale - off), 0 where that argument is below -80 (as
// the wasm softmax: no subnormals); returns their sum; n % 8 == 0.
TEXT ·expAVX2(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y10
	VBROADCASTSS off+28(FP), Y11
	VXORPS Y12, Y12, Y12
	SHRQ $3, CX
	JZ expdone
exploop:
	VMULPS (SI), Y10, Y0
	VSUBPS Y11, Y0, Y0
	VCMPPS $0x1e, expM80<>(SB), Y0, Y9
	EXP
	VANDPS Y9, Y0, Y0
	VADDPS Y0, Y12, Y12
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ exploop
expdone:
	VEXTRACTF128 $1, Y12, X13
	VADDPS X13, X12, X12
	VHADDPS X12, X12, X12
	VHADDPS X12, X12, X12
	MOVSS X12, ret+32(FP)
	VZEROUPPER
	RET

// func maxAVX2(src *float32, n int) float32: the largest of src[:n], n % 8
// == 0, n > 0.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	SHRQ $3, CX
	VMOVUPS (SI), Y0
maxloop:
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	DECQ CX
	JNZ maxloop
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	MOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func scaleAVX2(p *float32, n int, s float32): p[i] *= s, n % 8 == 0.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1
	SHRQ $3, CX
	JZ scaledone
scaleloop:
	VMULPS (SI), Y1, Y0
	VMOVUPS Y0, (SI)
	ADDQ $32, SI
	DECQ CX
	JNZ scaleloop
scaledone:
	VZEROUPPER
	RET

// func sumsAVX2(src *float32, n int, pivot float64) (sum, sq float64)
// Σ(x-pivot) and Σ(x-pivot)² over src[:n] in float64 (GroupNorm's shifted
// statistics), four float64 lanes in two chains each; n % 8 == 0.
TEXT ·sumsAVX2(SB), NOSPLIT, $0-40
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD pivot+16(FP), Y8
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	SHRQ $3, CX
	JZ sumsdone
sumsloop:
	VCVTPS2PD (SI), Y4
	VCVTPS2PD 16(SI), Y5
	VSUBPD Y8, Y4, Y4
	VSUBPD Y8, Y5, Y5
	VADDPD Y4, Y0, Y0
	VADDPD Y5, Y1, Y1
	VFMADD231PD Y4, Y4, Y2
	VFMADD231PD Y5, Y5, Y3
	ADDQ $32, SI
	DECQ CX
	JNZ sumsloop
sumsdone:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VHADDPD X0, X0, X0
	VEXTRACTF128 $1, Y2, X3
	VADDPD X3, X2, X2
	VHADDPD X2, X2, X2
	MOVSD X0, sum+24(FP)
	MOVSD X2, sq+32(FP)
	VZEROUPPER
	RET
