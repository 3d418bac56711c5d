//go:build !purego

#include "textflag.h"

// Winograd F(2x2, 3x3) input transform V = Bᵀ d B (Lavin & Gray 2016) for
// one panel of 8 tiles, lanes across the tiles: every element of the 4x4
// input tiles is one VGATHERDPS over the tiles' offsets, then adds and
// subtracts, and the 16 V_ξ rows of the panel are contiguous 8-float
// stores (the packed B layout of kernels.wasm's winograd_in).
//
// func winoInAVX2(xp *float32, idx *int32, planes, pstride, wp int, vp *float32, vstride int)
// idx: the 8 tiles' top-left offsets in floats; pstride, wp, vstride in
// bytes; vp: the panel's V_0 row of channel 0 (channel i at +32·i bytes).

// ROW gathers row r (row pointer R) of the 8 tiles into Y0-Y3 and leaves
// d·B of it there: [d0-d2, d1+d2, d2-d1, d1-d3].
#define ROW(R) \
	VPCMPEQD Y5, Y5, Y5; \
	VGATHERDPS Y5, 0(R)(Y6*4), Y0; \
	VPCMPEQD Y5, Y5, Y5; \
	VGATHERDPS Y5, 4(R)(Y6*4), Y1; \
	VPCMPEQD Y5, Y5, Y5; \
	VGATHERDPS Y5, 8(R)(Y6*4), Y2; \
	VPCMPEQD Y5, Y5, Y5; \
	VGATHERDPS Y5, 12(R)(Y6*4), Y3; \
	VSUBPS Y2, Y0, Y0; \
	VSUBPS Y3, Y1, Y3; \
	VADDPS Y2, Y1, Y4; \
	VSUBPS Y1, Y2, Y2; \
	VMOVAPS Y4, Y1

TEXT ·winoInAVX2(SB), NOSPLIT, $0-56
	MOVQ xp+0(FP), SI
	MOVQ idx+8(FP), AX
	VMOVDQU (AX), Y6
	MOVQ planes+16(FP), CX
	MOVQ pstride+24(FP), R8
	MOVQ wp+32(FP), R9
	MOVQ vp+40(FP), DI
	MOVQ vstride+48(FP), DX
	TESTQ CX, CX
	JZ done
loop:
	MOVQ SI, R10
	LEAQ (SI)(R9*1), R11
	LEAQ (SI)(R9*2), R12
	LEAQ (R11)(R9*2), R13
	// row 2 -> e2 (Y7-Y10)
	ROW(R12)
	VMOVAPS Y0, Y7
	VMOVAPS Y1, Y8
	VMOVAPS Y2, Y9
	VMOVAPS Y3, Y10
	// row 1 -> e1 (Y11-Y14)
	ROW(R11)
	VMOVAPS Y0, Y11
	VMOVAPS Y1, Y12
	VMOVAPS Y2, Y13
	VMOVAPS Y3, Y14
	// V rows 1 (e1+e2) and 2 (e2-e1): ξ = 4..7 and 8..11
	MOVQ DI, BX
	LEAQ (BX)(DX*4), BX
	VADDPS Y7, Y11, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VADDPS Y8, Y12, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VADDPS Y9, Y13, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VADDPS Y10, Y14, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VSUBPS Y11, Y7, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VSUBPS Y12, Y8, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VSUBPS Y13, Y9, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VSUBPS Y14, Y10, Y0
	VMOVUPS Y0, (BX)
	// row 0: V row 0 = t - e2 (ξ = 0..3)
	ROW(R10)
	MOVQ DI, BX
	VSUBPS Y7, Y0, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VSUBPS Y8, Y1, Y1
	VMOVUPS Y1, (BX)
	ADDQ DX, BX
	VSUBPS Y9, Y2, Y2
	VMOVUPS Y2, (BX)
	ADDQ DX, BX
	VSUBPS Y10, Y3, Y3
	VMOVUPS Y3, (BX)
	// row 3: V row 3 = e1 - t (ξ = 12..15)
	ROW(R13)
	LEAQ (DI)(DX*8), BX
	LEAQ (BX)(DX*4), BX
	VSUBPS Y0, Y11, Y0
	VMOVUPS Y0, (BX)
	ADDQ DX, BX
	VSUBPS Y1, Y12, Y1
	VMOVUPS Y1, (BX)
	ADDQ DX, BX
	VSUBPS Y2, Y13, Y2
	VMOVUPS Y2, (BX)
	ADDQ DX, BX
	VSUBPS Y3, Y14, Y3
	VMOVUPS Y3, (BX)
	ADDQ R8, SI
	ADDQ $32, DI
	DECQ CX
	JNZ loop
done:
	VZEROUPPER
	RET

// Winograd F(2x2, 3x3) output transform Y = Aᵀ M A with the epilogue, for
// 8 tiles that are consecutive in one tile row, uncropped and with one bias
// row (the common case; others go through Go): lanes across the tiles,
// the 16 M_ξ rows are contiguous loads, and the 2x2 outputs of the 8 tiles
// are two rows of 16 floats, interleaved from y00/y01 and y10/y11.
//
// func winoOutAVX2(m *float32, ldm, o int, out *float32, plane, ow int, bias, res *float32)
// m: M_0 of channel 0 at the first tile (channel oc's 16 rows at
// +16·oc·ldm); out, res: the first tile's top-left output of channel 0;
// bias: the tiles' bias row (bias[oc]), or nil; res may be nil. ldm, plane
// and ow in bytes.
TEXT ·winoOutAVX2(SB), NOSPLIT, $0-64
	MOVQ m+0(FP), SI
	MOVQ ldm+8(FP), R8
	MOVQ o+16(FP), CX
	MOVQ out+24(FP), DI
	MOVQ plane+32(FP), R9
	MOVQ ow+40(FP), R10
	MOVQ bias+48(FP), BX
	MOVQ res+56(FP), DX
	TESTQ CX, CX
	JZ wodone
woloop:
	// s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 (rows of 4 M_ξ), per column c.
	MOVQ SI, AX
	VMOVUPS (AX), Y0
	VMOVUPS (AX)(R8*1), Y1
	LEAQ (AX)(R8*2), AX
	VMOVUPS (AX), Y2
	VMOVUPS (AX)(R8*1), Y3
	LEAQ (AX)(R8*2), AX
	// rows ξ = 4..7 (m1): s0 += m1, s1 = m1
	VMOVUPS (AX), Y4
	VADDPS Y4, Y0, Y0
	VMOVUPS (AX)(R8*1), Y5
	VADDPS Y5, Y1, Y1
	LEAQ (AX)(R8*2), AX
	VMOVUPS (AX), Y6
	VADDPS Y6, Y2, Y2
	VMOVUPS (AX)(R8*1), Y7
	VADDPS Y7, Y3, Y3
	LEAQ (AX)(R8*2), AX
	// rows ξ = 8..11 (m2): s0 += m2, s1 -= m2
	VMOVUPS (AX), Y8
	VADDPS Y8, Y0, Y0
	VSUBPS Y8, Y4, Y4
	VMOVUPS (AX)(R8*1), Y8
	VADDPS Y8, Y1, Y1
	VSUBPS Y8, Y5, Y5
	LEAQ (AX)(R8*2), AX
	VMOVUPS (AX), Y8
	VADDPS Y8, Y2, Y2
	VSUBPS Y8, Y6, Y6
	VMOVUPS (AX)(R8*1), Y8
	VADDPS Y8, Y3, Y3
	VSUBPS Y8, Y7, Y7
	LEAQ (AX)(R8*2), AX
	// rows ξ = 12..15 (m3): s1 -= m3
	VMOVUPS (AX), Y8
	VSUBPS Y8, Y4, Y4
	VMOVUPS (AX)(R8*1), Y8
	VSUBPS Y8, Y5, Y5
	LEAQ (AX)(R8*2), AX
	VMOVUPS (AX), Y8
	VSUBPS Y8, Y6, Y6
	VMOVUPS (AX)(R8*1), Y8
	VSUBPS Y8, Y7, Y7
	// y00 = s0[0]+s0[1]+s0[2] (Y8), y01 = s0[1]-s0[2]-s0[3] (Y9),
	// y10 = s1[0]+s1[1]+s1[2] (Y10), y11 = s1[1]-s1[2]-s1[3] (Y11)
	VADDPS Y1, Y0, Y8
	VADDPS Y2, Y8, Y8
	VSUBPS Y2, Y1, Y9
	VSUBPS Y3, Y9, Y9
	VADDPS Y5, Y4, Y10
	VADDPS Y6, Y10, Y10
	VSUBPS Y6, Y5, Y11
	VSUBPS Y7, Y11, Y11
	TESTQ BX, BX
	JZ wonobias
	VBROADCASTSS (BX), Y12
	VADDPS Y12, Y8, Y8
	VADDPS Y12, Y9, Y9
	VADDPS Y12, Y10, Y10
	VADDPS Y12, Y11, Y11
	ADDQ $4, BX
wonobias:
	// Interleave: output row 0 = y00_0 y01_0 y00_1 y01_1 ... (16 floats).
	VUNPCKLPS Y9, Y8, Y0
	VUNPCKHPS Y9, Y8, Y1
	VPERM2F128 $0x20, Y1, Y0, Y2
	VPERM2F128 $0x31, Y1, Y0, Y3
	VUNPCKLPS Y11, Y10, Y4
	VUNPCKHPS Y11, Y10, Y5
	VPERM2F128 $0x20, Y5, Y4, Y6
	VPERM2F128 $0x31, Y5, Y4, Y7
	TESTQ DX, DX
	JZ wonores
	VADDPS (DX), Y2, Y2
	VADDPS 32(DX), Y3, Y3
	VADDPS (DX)(R10*1), Y6, Y6
	VADDPS 32(DX)(R10*1), Y7, Y7
	ADDQ R9, DX
wonores:
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	VMOVUPS Y6, (DI)(R10*1)
	VMOVUPS Y7, 32(DI)(R10*1)
	ADDQ R9, DI
	MOVQ R8, AX
	SHLQ $4, AX
	ADDQ AX, SI
	DECQ CX
	JNZ woloop
wodone:
	VZEROUPPER
	RET
