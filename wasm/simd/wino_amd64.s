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

// KEEP copies ROW's result Y0-Y3 to a-d.
#define KEEP(a, b, c, d) VMOVAPS Y0, a; VMOVAPS Y1, b; VMOVAPS Y2, c; VMOVAPS Y3, d

// VROWS4 stores four V rows (BX on, DX apart; BX left at the last):
// op a_i, b_i, d_i, then d_i is row i.
#define VROW(op, a, b, d) op a, b, d; VMOVUPS d, (BX)
#define VROWS4(op, a0, b0, d0, a1, b1, d1, a2, b2, d2, a3, b3, d3) \
	VROW(op, a0, b0, d0); ADDQ DX, BX \
	VROW(op, a1, b1, d1); ADDQ DX, BX \
	VROW(op, a2, b2, d2); ADDQ DX, BX \
	VROW(op, a3, b3, d3)

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
	KEEP(Y7, Y8, Y9, Y10)
	// row 1 -> e1 (Y11-Y14)
	ROW(R11)
	KEEP(Y11, Y12, Y13, Y14)
	// V rows 1 (e1+e2) and 2 (e2-e1): ξ = 4..7 and 8..11
	MOVQ DI, BX
	LEAQ (BX)(DX*4), BX
	VROWS4(VADDPS, Y7, Y11, Y0, Y8, Y12, Y0, Y9, Y13, Y0, Y10, Y14, Y0)
	ADDQ DX, BX
	VROWS4(VSUBPS, Y11, Y7, Y0, Y12, Y8, Y0, Y13, Y9, Y0, Y14, Y10, Y0)
	// row 0: V row 0 = t - e2 (ξ = 0..3)
	ROW(R10)
	MOVQ DI, BX
	VROWS4(VSUBPS, Y7, Y0, Y0, Y8, Y1, Y1, Y9, Y2, Y2, Y10, Y3, Y3)
	// row 3: V row 3 = e1 - t (ξ = 12..15)
	ROW(R13)
	LEAQ (DI)(DX*8), BX
	LEAQ (BX)(DX*4), BX
	VROWS4(VSUBPS, Y0, Y11, Y0, Y1, Y12, Y1, Y2, Y13, Y2, Y3, Y14, Y3)
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
// MROWS4 reads four M rows at AX (R8 apart; AX ends two rows on from the
// third), each through op(row, a_i, b_i).
#define MROWS4(op, a0, b0, a1, b1, a2, b2, a3, b3) \
	op((AX), a0, b0); op((AX)(R8*1), a1, b1); LEAQ (AX)(R8*2), AX \
	op((AX), a2, b2); op((AX)(R8*1), a3, b3)
// The ops: load into a; s0 (b) += m1 (loaded into a, s1 = m1); s0 (a) +=
// m2, s1 (b) -= m2; s1 (a) -= m3.
#define MLOAD(m, a, b) VMOVUPS m, a
#define MADD(m, a, b) VMOVUPS m, a; VADDPS a, b, b
#define MADDSUB(m, a, b) VMOVUPS m, Y8; VADDPS Y8, a, a; VSUBPS Y8, b, b
#define MSUB(m, a, b) VMOVUPS m, Y8; VSUBPS Y8, a, a

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
	MROWS4(MLOAD, Y0, _, Y1, _, Y2, _, Y3, _)
	LEAQ (AX)(R8*2), AX
	// rows ξ = 4..7 (m1): s0 += m1, s1 = m1
	MROWS4(MADD, Y4, Y0, Y5, Y1, Y6, Y2, Y7, Y3)
	LEAQ (AX)(R8*2), AX
	// rows ξ = 8..11 (m2): s0 += m2, s1 -= m2
	MROWS4(MADDSUB, Y0, Y4, Y1, Y5, Y2, Y6, Y3, Y7)
	LEAQ (AX)(R8*2), AX
	// rows ξ = 12..15 (m3): s1 -= m3
	MROWS4(MSUB, Y4, _, Y5, _, Y6, _, Y7, _)
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
