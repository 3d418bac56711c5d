//go:build js && wasm

package webgpu

import (
	"context"
	"embed"
	"strings"

	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

//go:embed *.wgsl
var wgsl embed.FS

// family is one .wgsl file: its entry points share one bind group layout
// (binding 0 is always the uniform parameters), so a node's bind group works
// for all of them.
type family struct {
	file    string
	weights bool     // reads parameters: weights.wgsl is pasted in
	gemms   []string // gemm.wgsl instances pasted in, by prefix
	layout  []gpu.BindingType
	shared  []string // other shared .wgsl files pasted in (index.wgsl, reduce64.wgsl)
}

const (
	u  = gpu.UniformBinding
	ro = gpu.ReadOnlyStorage
	rw = gpu.StorageBinding
)

var families = map[string]family{
	"conv":        {"conv.wgsl", true, []string{"conv2d", "convt"}, []gpu.BindingType{u, ro, ro, ro, ro, ro, rw}, []string{"index.wgsl"}},
	"linear":      {"linear.wgsl", true, []string{"linear"}, []gpu.BindingType{u, ro, ro, ro, rw, ro}, []string{"index.wgsl"}},
	"attention":   {"attention.wgsl", false, []string{"scores", "pv", "scorescm", "pvcm"}, []gpu.BindingType{u, ro, ro, ro, rw, rw}, []string{"reduce64.wgsl", "index.wgsl"}},
	"norm":        {"norm.wgsl", true, nil, []gpu.BindingType{u, ro, ro, ro, ro, rw, ro}, nil},
	"elementwise": {"elementwise.wgsl", false, nil, []gpu.BindingType{u, ro, ro, rw}, []string{"index.wgsl"}},
	"layout":      {"layout.wgsl", false, nil, []gpu.BindingType{u, ro, ro, rw}, []string{"index.wgsl"}},
	"embed":       {"embed.wgsl", true, nil, []gpu.BindingType{u, ro, ro, ro, rw}, []string{"index.wgsl"}},
	// core/sampler.Space's operations (space.go): binding 0 is a slot of
	// a storage ring of parameters, not a uniform.
	"vec": {"vec.wgsl", false, nil, []gpu.BindingType{ro, rw, rw}, []string{"index.wgsl"}},
	// Winograd convolution (serial kernels, winograd.go): conv.wgsl's
	// Params, bindings and epilogue with winograd.wgsl's steps.
	"winograd": {"winograd.wgsl", true, []string{"wino"}, []gpu.BindingType{u, ro, ro, ro, ro, ro, rw}, []string{"index.wgsl", "conv.wgsl"}},
}

// Workgroup memory and storage bindings the kernels use at most, checked
// against the device limits when a program is compiled.
const (
	workgroupBytes  = 2 * 1024 * 4 // gemm.wgsl's two 16×64 f32 tiles
	storageBindings = 6            // conv.wgsl
)

// Flag bits of the kernels' uniform flags word (weights.wgsl).
const (
	flagBias = 1 << iota
	flagE
	flagR
	flagF16
	flagSiLU
	flagCols // linear: scattered output columns (merged linears)
)

// weightFormat is how parameters are stored on the GPU.
type weightFormat int

const (
	formatF32 weightFormat = iota
	formatF16              // two halves per u32, element 2i in the low half
)

func (f weightFormat) String() string {
	if f == formatF16 {
		return "f16"
	}
	return "f32"
}

// source assembles a family's WGSL.
func (fam family) source() (string, error) {
	body, err := wgsl.ReadFile(fam.file)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	if fam.weights {
		w, err := wgsl.ReadFile("weights.wgsl")
		if err != nil {
			return "", err
		}
		sb.Write(w)
	}
	for _, f := range fam.shared {
		w, err := wgsl.ReadFile(f)
		if err != nil {
			return "", err
		}
		sb.Write(w)
	}
	sb.Write(body)
	if len(fam.gemms) > 0 {
		g, err := wgsl.ReadFile("gemm.wgsl")
		if err != nil {
			return "", err
		}
		gs, err := wgsl.ReadFile("gemm_serial.wgsl")
		if err != nil {
			return "", err
		}
		for _, p := range fam.gemms {
			sb.WriteString(strings.ReplaceAll(string(g), "GEMM", p))
			if !strings.Contains(string(body), "fn "+p+"_serial(") {
				sb.WriteString(strings.ReplaceAll(string(gs), "GEMM", p))
			}
		}
	}
	return sb.String(), nil
}

func (d *Device) layout(name string) *gpu.BindGroupLayout {
	if l, ok := d.layouts[name]; ok {
		return l
	}
	l := d.gpu.CreateBindGroupLayout(name, families[name].layout)
	d.layouts[name] = l
	return l
}

func (d *Device) module(ctx context.Context, name string) (*gpu.ShaderModule, error) {
	key := name
	if m, ok := d.modules[key]; ok {
		return m, nil
	}
	src, err := families[name].source()
	if err != nil {
		return nil, err
	}
	m, err := d.gpu.CreateShaderModule(ctx, key, src)
	if err != nil {
		return nil, err
	}
	d.modules[key] = m
	return m, nil
}

// kernelKey names a pipeline: a family's entry point. Options that vary per
// node are uniform flags, not override constants, so each entry point is
// compiled once per device (that takes seconds on a software GPU).
type kernelKey struct {
	fam, entry string
}

func (k kernelKey) String() string { return k.fam + ":" + k.entry }

// pipelinesFor creates (concurrently, with createComputePipelineAsync) every
// pipeline in keys not yet cached. The caller holds d.mu.
func (d *Device) pipelinesFor(ctx context.Context, keys map[kernelKey]bool) error {
	type pending struct {
		key kernelKey
		p   *gpu.PendingPipeline
	}
	var ps []pending
	for k := range keys {
		if _, ok := d.pipelines[k.String()]; ok {
			continue
		}
		m, err := d.module(ctx, k.fam)
		if err != nil {
			return err
		}
		ps = append(ps, pending{k, d.gpu.StartComputePipeline(gpu.PipelineRequest{
			Label: k.String(), Module: m, Entry: k.entry, Layout: d.layout(k.fam),
		})})
	}
	var first error
	for _, p := range ps {
		pl, err := p.p.Wait(ctx)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		d.pipelines[pl.Label] = pl
	}
	return first
}

func (d *Device) pipeline(k kernelKey) *gpu.ComputePipeline { return d.pipelines[k.String()] }
