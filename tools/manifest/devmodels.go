package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/diffuse-web/diffuse/core/model"
)

// devModel is a random-weight development model made from a diffusers
// fixture, run at another sample size (a UNet is convolutional: the same
// weights run at any size its resolution levels divide).
type devModel struct {
	name      string
	fixture   string // folder under FIXTURES_DIR/diffusers
	size      int    // sample_size to store
	nullClass int    // -1: none
	scheduler string // file under devmodels/, "" for none (the app's default applies)
}

var devModelList = []devModel{
	{name: "dev-tiny", fixture: "mnist_cond", size: 12, nullClass: 9},
	{name: "dev-mnist", fixture: "mnist_cond", size: 28, nullClass: 9, scheduler: "dev-mnist.scheduler.json"},
	{name: "dev-rgb", fixture: "cifar_like", size: 8, nullClass: -1},
}

func writeDevModels(fixtures, wdir string) error {
	for _, d := range devModelList {
		src := filepath.Join(fixtures, "diffusers", d.fixture)
		m, err := model.FromDiffusersDir(src)
		if err != nil {
			return err
		}
		var cfg map[string]any
		if err := json.Unmarshal(m.Config, &cfg); err != nil {
			return err
		}
		cfg["sample_size"] = d.size
		config, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		var sched json.RawMessage
		if d.scheduler != "" {
			if sched, err = devFiles.ReadFile("devmodels/" + d.scheduler); err != nil {
				return err
			}
		}
		dm, err := model.New(m.Arch, config, sched, m.Params)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		dm.NullClass = d.nullClass
		if err := dm.Save(filepath.Join(wdir, d.name+".safetensors"), "F16"); err != nil {
			return err
		}
		card, err := devFiles.ReadFile("devmodels/" + d.name + ".md")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(wdir, d.name+".md"), card, 0o644); err != nil {
			return err
		}
	}
	return nil
}
