//go:build !purego

#include "textflag.h"

// The native Go kernel set's GEMM micro-kernels (AVX2 + FMA): a 4 x 8·NB
// register tile (NB = 1, 2, 3 packed B panels of 8 columns against one
// packed A panel of MR = 4 rows), kept in 4·NB ymm accumulators over the
// whole k loop: per k step NB vector loads of B, four broadcasts of A and
// 4·NB FMAs. With NB = 3 that is 12 accumulators + 3 B + 1 A = all 16 ymm
// registers, 12 FMAs against 7 loads per step (the 4x8 tile of kernels.wasm
// has 4 accumulators here: too few to hide the FMA latency). One call runs
// mp consecutive A panels against the same B panels (which stay in L1),
// so the call's cost is paid once per column of tiles.
//
// func gemmTileAVX2xNB(ap, bp *float32, k, bstride int, c *float32, ldc, acc, mp int)
// ap: the first packed A panel ([k][4], the next one 16·k bytes on); bp:
// the first packed B panel ([k][8]), the next ones bstride bytes on; c:
// the first tile's top-left element, rows ldc bytes apart (the next tile
// 4 rows down); acc != 0 adds the products to c, else c is overwritten.
// k >= 1, mp >= 1.

// GEMM_TILE is the kernel body for NB panels, from its parts for that NB:
// ZERO clears the 4·NB accumulators (row r's NB in Y(r·NB)…), LOADB loads
// the k step's NB B vectors into Y12… (the panels bstride = R8 and 2·R8 =
// R9 apart), FMAS broadcasts A's four values (Y15) into the accumulators,
// ADDS adds the tile's rows of c (row R10, ldc = SI apart) to them, STORES
// writes them to its rows.
#define GEMM_TILE(ZERO, LOADB, FMAS, ADDS, STORES) \
	MOVQ ap+0(FP), AX \
	MOVQ c+32(FP), DI \
	MOVQ ldc+40(FP), SI \
	MOVQ acc+48(FP), DX \
	MOVQ bstride+24(FP), R8 \
	LEAQ (R8)(R8*1), R9 \
	MOVQ mp+56(FP), R11 \
panel: \
	MOVQ bp+8(FP), BX \
	MOVQ k+16(FP), CX \
	MOVQ DI, R10 \
	ZERO \
loop: \
	LOADB \
	FMAS \
	ADDQ $16, AX \
	ADDQ $32, BX \
	DECQ CX \
	JNZ loop \
	TESTQ DX, DX \
	JZ store \
	ADDS \
	MOVQ DI, R10 \
store: \
	STORES \
	LEAQ (DI)(SI*4), DI \
	DECQ R11 \
	JNZ panel \
	VZEROUPPER \
	RET

#define ZERO4(a, b, c, d) VXORPS a, a, a; VXORPS b, b, b; VXORPS c, c, c; VXORPS d, d, d

// One row's parts: the FMAs of A's value at off, the add of its c row and
// the store to it (then R10 moves to the next row: ADDS and STORES pass
// a NEXT of ADDQ SI, R10 between rows).
#define FMA1(off, a) VBROADCASTSS off(AX), Y15; VFMADD231PS Y15, Y12, a
#define FMA2(off, a, b) FMA1(off, a); VFMADD231PS Y15, Y13, b
#define FMA3(off, a, b, c) FMA2(off, a, b); VFMADD231PS Y15, Y14, c
#define ADDC1(a) VADDPS 0(R10), a, a
#define ADDC2(a, b) ADDC1(a); VADDPS 32(R10), b, b
#define ADDC3(a, b, c) ADDC2(a, b); VADDPS 64(R10), c, c
#define STC1(a) VMOVUPS a, 0(R10)
#define STC2(a, b) STC1(a); VMOVUPS b, 32(R10)
#define STC3(a, b, c) STC2(a, b); VMOVUPS c, 64(R10)
#define NEXT ADDQ SI, R10

#define ZERO_1 ZERO4(Y0, Y1, Y2, Y3)
#define LOADB_1 VMOVUPS (BX), Y12
#define FMAS_1 FMA1(0, Y0); FMA1(4, Y1); FMA1(8, Y2); FMA1(12, Y3)
#define ADDS_1 ADDC1(Y0); NEXT; ADDC1(Y1); NEXT; ADDC1(Y2); NEXT; ADDC1(Y3)
#define STORES_1 STC1(Y0); NEXT; STC1(Y1); NEXT; STC1(Y2); NEXT; STC1(Y3)

#define ZERO_2 ZERO4(Y0, Y1, Y2, Y3); ZERO4(Y4, Y5, Y6, Y7)
#define LOADB_2 LOADB_1; VMOVUPS (BX)(R8*1), Y13
#define FMAS_2 FMA2(0, Y0, Y1); FMA2(4, Y2, Y3); FMA2(8, Y4, Y5); FMA2(12, Y6, Y7)
#define ADDS_2 ADDC2(Y0, Y1); NEXT; ADDC2(Y2, Y3); NEXT; ADDC2(Y4, Y5); NEXT; ADDC2(Y6, Y7)
#define STORES_2 STC2(Y0, Y1); NEXT; STC2(Y2, Y3); NEXT; STC2(Y4, Y5); NEXT; STC2(Y6, Y7)

#define ZERO_3 ZERO4(Y0, Y1, Y2, Y3); ZERO4(Y4, Y5, Y6, Y7); ZERO4(Y8, Y9, Y10, Y11)
#define LOADB_3 LOADB_2; VMOVUPS (BX)(R9*1), Y14
#define FMAS_3 FMA3(0, Y0, Y1, Y2); FMA3(4, Y3, Y4, Y5); FMA3(8, Y6, Y7, Y8); FMA3(12, Y9, Y10, Y11)
#define ADDS_3 ADDC3(Y0, Y1, Y2); NEXT; ADDC3(Y3, Y4, Y5); NEXT; ADDC3(Y6, Y7, Y8); NEXT; ADDC3(Y9, Y10, Y11)
#define STORES_3 STC3(Y0, Y1, Y2); NEXT; STC3(Y3, Y4, Y5); NEXT; STC3(Y6, Y7, Y8); NEXT; STC3(Y9, Y10, Y11)

TEXT ·gemmTileAVX2x1(SB), NOSPLIT, $0-64
	GEMM_TILE(ZERO_1, LOADB_1, FMAS_1, ADDS_1, STORES_1)

TEXT ·gemmTileAVX2x2(SB), NOSPLIT, $0-64
	GEMM_TILE(ZERO_2, LOADB_2, FMAS_2, ADDS_2, STORES_2)

TEXT ·gemmTileAVX2x3(SB), NOSPLIT, $0-64
	GEMM_TILE(ZERO_3, LOADB_3, FMAS_3, ADDS_3, STORES_3)
