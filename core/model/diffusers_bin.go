package model

import (
	"fmt"
	"io/fs"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

// diffusersBinName is the pickled weights file older diffusers
// save_pretrained folders ship instead of diffusion_pytorch_model.safetensors.
const diffusersBinName = "diffusion_pytorch_model.bin"

// readDiffusersBin reads a diffusion_pytorch_model.bin (torch.save of the
// model's state dict) through torchpt's restricted unpickler, which executes
// nothing: a hostile file is refused with a *torchpt.Error. The file must be
// a regular file of at most limits.MaxWeightsBytes (else a
// *limits.FileError), and torchpt's default totals bound what it may ask
// for: the inflated size of compressed entries, and the float32 size of
// all its tensors, stride-0 views and repeated references included
// (MaxTotalBytes, the memory budget), checked before any is converted.
func readDiffusersBin(fsys fs.FS, path string) (map[string]*tensor.Tensor, error) {
	data, err := limits.ReadFS(fsys, path, limits.MaxWeightsBytes)
	if err != nil {
		return nil, err
	}
	v, err := torchpt.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sd, _, err := torchpt.StateDict(v, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	params := make(map[string]*tensor.Tensor, len(sd))
	for name, t := range sd {
		tt, err := t.ToTensor()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		params[name] = tt
	}
	return params, nil
}
