//go:build js && wasm

package main

import (
	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/model"
)

// fastDenoiser is --backend fast where the CLI itself is built as js/wasm
// (only its tests, under Node's go_js_wasm_exec, which attaches no SIMD
// kernels): there is no native kernel set, so it is the reference.
func fastDenoiser(m *model.Model) model.Denoiser { return cpu.NewDenoiser(m) }
