// Command randunet writes a random-weight diffusers UNet2DModel folder from a
// public config.json (unettest.WriteDiffusers), for tests and benchmarks that
// must run a published architecture at full size without its weights:
//
//	go run ./core/unet/unettest/cmd/randunet -config core/unet/testdata/ddpm_church_256_config.json \
//	    -scheduler core/unet/testdata/ddpm_church_256_scheduler_config.json -o /tmp/church
//
// writes /tmp/church/unet/{config.json,diffusion_pytorch_model.safetensors}
// (float32, as diffusers saves it) and /tmp/church/scheduler/scheduler_config.json,
// and prints the unet folder. The files are test data: never commit them.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/unet/unettest"
)

func main() {
	cfg := flag.String("config", "", "the model's config.json")
	sched := flag.String("scheduler", "", "its scheduler_config.json (optional)")
	out := flag.String("o", "", "output folder")
	seed := flag.Uint64("seed", 1, "weights seed")
	flag.Parse()
	if *cfg == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: randunet -config config.json [-scheduler scheduler_config.json] -o DIR [-seed N]")
		os.Exit(2)
	}
	c, err := limits.ReadFile(*cfg, limits.MaxConfigBytes)
	if err != nil {
		fail(err)
	}
	var s []byte
	if *sched != "" {
		if s, err = limits.ReadFile(*sched, limits.MaxConfigBytes); err != nil {
			fail(err)
		}
	}
	ud, err := unettest.WriteDiffusers(*out, c, s, *seed)
	if err != nil {
		fail(err)
	}
	fmt.Println(ud)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "randunet:", err)
	os.Exit(1)
}
