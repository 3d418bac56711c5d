package model

import (
	"fmt"
	"os"

	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/torchpt"
)

// diffusersBinName is the pickled weights file older diffusers
// save_pretrained folders ship instead of diffusion_pytorch_model.safetensors.
const diffusersBinName = "diffusion_pytorch_model.bin"

// readDiffusersBin reads a diffusion_pytorch_model.bin (torch.save of the
// model's state dict) through torchpt's restricted unpickler, which executes
// nothing: a hostile file is refused with a *torchpt.Error.
func readDiffusersBin(path string) (map[string]*tensor.Tensor, error) {
	v, err := torchpt.LoadFile(path)
	if err != nil {
		return nil, err
	}
	sd, _, err := torchpt.StateDict(v, "")
	if err != nil {
		return nil, err
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

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }
