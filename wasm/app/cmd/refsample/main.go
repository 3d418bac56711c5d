// Command refsample runs one sampling request natively, through the same
// engine the browser app's wasm runs (core/engine) on the CPU reference
// backend, and writes the batch as .npy. The browser tests compare the page's
// images with it when the native `diffuse sample` CLI is not available.
//
//	go run ./wasm/app/cmd/refsample --weights W.safetensors --sampler ddim --steps 4 \
//	    --seed 7 [--class 3] [--guidance 2] [--eta 0] [--batch 1] --out-npy x.npy
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/diffuse-web/diffuse/core/cpu"
	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/npy"
)

func main() {
	weights := flag.String("weights", "", "converted .safetensors model (required)")
	samplerName := flag.String("sampler", "ddim", "sampler name")
	steps := flag.Int("steps", 0, "steps (0: the sampler's default)")
	eta := flag.Float64("eta", 0, "DDIM η")
	seed := flag.Uint64("seed", 0, "seed")
	class := flag.Int("class", -1, "class label (-1: unconditional)")
	guidance := flag.Float64("guidance", 0, "classifier-free guidance scale")
	batch := flag.Int("batch", 1, "batch size")
	out := flag.String("out-npy", "", "output .npy (required)")
	flag.Parse()
	if *weights == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	data, err := os.ReadFile(*weights)
	if err != nil {
		log.Fatal(err)
	}
	l, err := engine.Load(data, "", -1)
	if err != nil {
		log.Fatal(err)
	}
	r := engine.Request{Sampler: *samplerName, Steps: *steps, Eta: *eta, Seed: *seed, Guidance: *guidance, Batch: *batch}
	if *class >= 0 {
		r.Class = class
	}
	res, err := l.Run(context.Background(), cpu.NewDenoiser(l.Model), r, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := npy.WriteFile(*out, res.Shape, res.X); err != nil {
		log.Fatal(err)
	}
}
