package model

import (
	"encoding/json"
	"io/fs"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/unet"
)

func init() {
	register(&Family{Arch: ArchDiffusersUNet2D, From: "diffusers",
		Parse: func(config json.RawMessage, params map[string]*tensor.Tensor) (Network, map[string]*tensor.Tensor, error) {
			c, err := unet.ParseConfig(config)
			if err != nil {
				return nil, nil, err
			}
			params = unet.RenameLegacy(params)
			for n, t := range unet.FixedParams(c) {
				params[n] = t // not the checkpoint's: Save leaves them out
			}
			return unetNet{c}, params, nil
		},
		Convert: func(fsys fs.FS, name string, _ ConvertOptions) (*Model, error) { return FromDiffusersFS(fsys, name) }})
}

// unetNet is diffusers' UNet2DModel (core/unet).
type unetNet struct{ c *unet.Config }

func (n unetNet) InShape() []int {
	h, w, _ := unet.SampleSize(n.c.SampleSize)
	return []int{n.c.InChannels, h, w}
}

func (n unetNet) Classes() int {
	if n.c.NumClassEmbeds == nil {
		return 0
	}
	return *n.c.NumClassEmbeds
}

// ProbeSize is sample_size, or the smallest size the U-Net takes.
func (n unetNet) ProbeSize() (int, int) {
	h, w, _ := unet.SampleSize(n.c.SampleSize)
	if h == 0 {
		h, w = n.c.DownFactor(), n.c.DownFactor()
	}
	return h, w
}

func (n unetNet) Build(params map[string]*tensor.Tensor, batch, height, width int) (*graph.Graph, error) {
	return unet.Build(n.c, params, batch, height, width)
}
