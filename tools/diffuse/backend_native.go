//go:build !(js && wasm)

package main

import (
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/wasm/simd"
)

// fastDenoiser is --backend fast natively: the SIMD backend's plan over its
// native Go kernel set (AVX2+FMA on all cores).
func fastDenoiser(m *model.Model) model.Denoiser { return simd.NewNativeDenoiser(m) }
