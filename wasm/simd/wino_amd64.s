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
