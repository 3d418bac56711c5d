//go:build js && wasm

// Package webgpu runs the project's network graphs (core/graph) on WebGPU
// compute shaders: a graph is compiled once per batch size into a Program
// (buffers, pipelines and bind groups all created up front), and a run only
// writes the inputs, submits one command buffer and reads the output back.
//
// Every graph op has a WGSL kernel (the .wgsl files beside this code,
// embedded); Conv2D, Linear and attention are tiled GEMMs. Weights that are
// exactly representable in f16 (as all weights loaded from f16 files are)
// stay packed two per u32 on the GPU.
//
// Faults: WebGPU validation, out-of-memory and internal errors come back as
// *Error naming the kernel; a lost or destroyed device gives an error
// matching ErrDeviceLost; errors no error scope caught (the device's
// uncapturederror event) fail the run in progress or the next one. IsFault
// tells all of these from errors in the request, so the caller can switch
// to the CPU backend and redo the step (Sample: finish from the last
// checkpoint, InterruptedError).
package webgpu

import (
	"context"
	"fmt"
	"sync"

	"github.com/diffuse-web/diffuse/wasm/webgpu/gpu"
)

// Errors re-exported from the binding, so callers need only this package.
var (
	// ErrNoWebGPU: no navigator.gpu or no adapter.
	ErrNoWebGPU = gpu.ErrNoWebGPU
	// ErrDeviceLost: the device was lost or destroyed (errors.Is matches).
	ErrDeviceLost = gpu.ErrDeviceLost
)

// Error is a WebGPU error caught by an error scope, naming the kernel.
type Error = gpu.Error

// IsFault reports whether err is a fault of the GPU, not of the request:
// device loss, a WebGPU validation, out-of-memory or internal error (caught
// by a scope or uncaptured), or a failed WebGPU call (a rejected mapAsync,
// say). What met a fault may have computed garbage: redo it on the CPU.
func IsFault(err error) bool { return gpu.IsFault(err) }

// LimitError says a network does not fit the device's limits.
type LimitError struct {
	What            string
	Limit           string
	Need, Have      uint64
	BatchSplittable bool // a smaller batch would fit
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("webgpu: %s needs %s = %d, the device allows %d", e.What, e.Limit, e.Need, e.Have)
}

// Device is an opened GPU device with this package's shader modules and
// pipelines cached on it, shared by every Program and Denoiser made on it.
type Device struct {
	gpu      *gpu.Device
	limits   gpu.Limits // what plans are checked against: the device's (tests lower them)
	software bool       // a CPU implementation of WebGPU (Software)
	*cache
}

// cache holds what is compiled once per GPU device.
type cache struct {
	mu        sync.Mutex
	modules   map[string]*gpu.ShaderModule
	layouts   map[string]*gpu.BindGroupLayout
	pipelines map[string]*gpu.ComputePipeline
	dummy     *gpu.Buffer // bound where a kernel's optional input is absent
}

// limitsWanted are the limits a plan may need beyond the defaults; Open asks
// for the adapter's maxima so any plan that fits the hardware fits the device.
var limitsWanted = []string{
	"maxStorageBufferBindingSize", "maxBufferSize",
	"maxComputeWorkgroupStorageSize", "maxStorageBuffersPerShaderStage",
}

// Open requests an adapter and a device. Without WebGPU it returns an error
// matching ErrNoWebGPU and a nil *Device.
func Open(ctx context.Context) (*Device, error) {
	a, err := gpu.RequestAdapter(ctx)
	if err != nil {
		return nil, err
	}
	return openDevice(ctx, a, "diffuse", nil)
}

// openDevice requests a device from adapter a with the adapter's maxima for
// limitsWanted and the given features.
func openDevice(ctx context.Context, a *gpu.Adapter, label string, features []string) (*Device, error) {
	have := map[string]uint64{
		"maxStorageBufferBindingSize":     a.Limits.MaxStorageBufferBindingSize,
		"maxBufferSize":                   a.Limits.MaxBufferSize,
		"maxComputeWorkgroupStorageSize":  a.Limits.MaxComputeWorkgroupStorageSize,
		"maxStorageBuffersPerShaderStage": a.Limits.MaxStorageBuffersPerShaderStage,
	}
	req := map[string]uint64{}
	for _, k := range limitsWanted {
		if have[k] > 0 {
			req[k] = have[k]
		}
	}
	d, err := a.RequestDevice(ctx, label, req, features)
	if err != nil {
		return nil, fmt.Errorf("webgpu: requesting a device: %w", err)
	}
	dev := newDevice(d)
	dev.software = a.Software
	return dev, nil
}

func newDevice(d *gpu.Device) *Device {
	return &Device{gpu: d, limits: d.Limits, cache: &cache{
		modules:   map[string]*gpu.ShaderModule{},
		layouts:   map[string]*gpu.BindGroupLayout{},
		pipelines: map[string]*gpu.ComputePipeline{},
		dummy:     d.CreateBuffer("unused input", 16, gpu.Storage),
	}}
}

// Software reports whether the adapter is a CPU implementation of WebGPU
// (SwiftShader, say). There workgroups run one after another on a few
// cores, so split-K only adds work and is not used.
func (d *Device) Software() bool { return d.software }

// Limits returns the device's limits.
func (d *Device) Limits() gpu.Limits { return d.limits }

// GPU returns the underlying binding, for callers that add their own kernels.
func (d *Device) GPU() *gpu.Device { return d.gpu }

// Destroy releases the device; everything made on it stops working, and
// pending or later runs fail with ErrDeviceLost.
func (d *Device) Destroy() { d.gpu.Destroy() }

// Lost is closed when the device is lost.
func (d *Device) Lost() <-chan struct{} { return d.gpu.Lost() }
