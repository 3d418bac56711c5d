// Package model holds what sits between a weights file and a sampler: the
// Denoiser interface every backend implements and every sampler drives, and
// the metadata keys our self-describing safetensors files carry.
package model

import "github.com/diffuse-web/diffuse/core/tensor"

// Denoiser evaluates a denoising network on a batch.
//
// x is [B, C, H, W]; t holds one time per sample in the network's own time
// units (the discrete timestep 0..N-1 for diffusers models, continuous t for
// score models); class holds one label per sample, or is nil for an
// unconditional model. The result is the raw network output (epsilon, x0, v or
// score, as the model's schedule metadata says), shaped like x.
type Denoiser interface {
	Denoise(x *tensor.Tensor, t []float32, class []int) (*tensor.Tensor, error)
}

// Metadata keys in a converted file's safetensors __metadata__ map. Every value
// is a string, as the safetensors format requires.
const (
	// KeyFormat is the version of this metadata scheme ("1").
	KeyFormat = "diffuse.format"
	// KeyArch names the network family, e.g. ArchDiffusersUNet2D.
	KeyArch = "diffuse.arch"
	// KeyConfig is the network's config as JSON (for diffusers models, the
	// fields of its config.json).
	KeyConfig = "diffuse.config"
	// KeyScheduler is the noise schedule and prediction type as JSON (the
	// fields of a diffusers scheduler_config.json), so users need not know them.
	KeyScheduler = "diffuse.scheduler"
	// KeyNullClass is the class label meaning "no class" for classifier-free
	// guidance (decimal integer), present only on class-conditional models.
	KeyNullClass = "diffuse.null_class"
)

// Network families that KeyArch can name.
const (
	ArchDiffusersUNet2D = "diffusers.UNet2DModel"
	// ArchScoreNet is the score-SDE tutorial's ScoreNet (outputs the score).
	ArchScoreNet = "scoresde.ScoreNet"
	// ArchToy2D is the 2-D toy MLP; a sample is a point shaped [2,1,1].
	ArchToy2D = "toy2d.MLP"
)
