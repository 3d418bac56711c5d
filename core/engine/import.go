package engine

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/core/safetensors"
)

// ImportOptions are the questions a visitor's checkpoint may need answered
// (convert's flags, as the page asks them).
type ImportOptions struct {
	// From is the checkpoint kind (model.Converter's: diffusers, lucidrains,
	// scoresde, toy2d); "" reads it off the files: a folder with config.json
	// is diffusers, a .safetensors file is ours (or toy2d's); a pickle
	// (.pt, .pth, .ckpt) must be named.
	From string `json:"from"`
	// Size is the image side: lucidrains (the Trainer's image_size) and
	// scoresde (the ScoreNet's), neither recorded in the checkpoint.
	Size int `json:"size"`
	// Sigma is the scoresde VE SDE's σ (the tutorial's 25).
	Sigma float64 `json:"sigma"`
	// Online takes a lucidrains checkpoint's online weights, not the EMA ones.
	Online bool `json:"online"`
}

// ImportError says why a visitor's files are not a model this build can
// convert or run: one line for the page.
type ImportError struct{ Err error }

func (e *ImportError) Error() string {
	return strings.Join(strings.Fields(e.Err.Error()), " ") // one line, whatever the cause wrote
}
func (e *ImportError) Unwrap() error { return e.Err }

// Import is the page's "bring your own model": it converts the checkpoint
// in files (a dropped diffusers folder, one of our .safetensors files, a
// lucidrains model-N.pt, a score-SDE ckpt.pth) with the CLI's converter
// (model.Converter, over the files in memory) to the CLI's default fp16
// file, and loads that file as a downloaded one is loaded. data is the file
// to keep (the caller stores it under Info.SHA256, so a reload loads it
// without converting again); converted is false when files held one of our
// files already, returned as it is. Errors are *ImportError.
func Import(files model.Files, o ImportOptions) (data []byte, converted bool, l *Loaded, err error) {
	data, converted, err = importFile(files, o)
	if err != nil {
		return nil, false, nil, &ImportError{err}
	}
	if l, err = Load(data, "", -1); err != nil {
		return nil, false, nil, &ImportError{err}
	}
	return data, converted, l, nil
}

func importFile(files model.Files, o ImportOptions) ([]byte, bool, error) {
	if len(files) == 0 {
		return nil, false, errors.New("no files were given")
	}
	from, name, err := detect(files, o.From)
	if err != nil {
		return nil, false, err
	}
	if from == "" { // one of ours: no conversion
		f, err := safetensors.Read(files[name])
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", name, err)
		}
		if _, err := model.FromSafetensors(f); err != nil {
			return nil, false, fmt.Errorf("%s: %w", name, err)
		}
		return files[name], false, nil
	}
	fam, err := model.Converter(from)
	if err != nil {
		return nil, false, err
	}
	co := model.ConvertOptions{Sigma: o.Sigma, Size: o.Size, Lucid: func() (lucid.Overrides, bool, error) {
		if o.Size <= 0 {
			return lucid.Overrides{}, false, errors.New("the image size is required for a lucidrains checkpoint (the Trainer checkpoint does not record it)")
		}
		if err := limits.Int("image size", int64(o.Size), 1, limits.MaxSide); err != nil {
			return lucid.Overrides{}, false, err
		}
		theta := 10000.0 // the Unet's default sinusoidal_pos_emb_theta (convert's --theta)
		return lucid.Overrides{ImageSize: [2]int{o.Size, o.Size}, Theta: &theta}, !o.Online, nil
	}}
	if from == "scoresde" {
		if o.Size <= 0 || o.Sigma <= 0 {
			return nil, false, errors.New("a score-SDE checkpoint needs its image size and σ (the checkpoint records neither)")
		}
		if err := limits.Int("image size", int64(o.Size), 1, limits.MaxSide); err != nil {
			return nil, false, err
		}
	}
	m, err := fam.Convert(files, name, co)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path.Base(name), err)
	}
	var buf bytes.Buffer
	if err := m.Write(&buf, "F16"); err != nil { // the CLI's default dtype
		return nil, false, err
	}
	return buf.Bytes(), true, nil
}

// detect finds the checkpoint in files: its kind ("" for one of our files)
// and the name the converter reads (a diffusers folder, or a file).
func detect(files model.Files, from string) (string, string, error) {
	var folders, names []string
	for n := range files {
		names = append(names, n)
		if path.Base(n) != "config.json" {
			continue
		}
		dir := path.Dir(n)
		for _, w := range []string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"} {
			if _, ok := files[path.Join(dir, w)]; ok {
				folders = append(folders, dir)
				break
			}
		}
	}
	sort.Strings(folders)
	sort.Strings(names)
	if from == "diffusers" || (from == "" && len(folders) > 0) {
		switch len(folders) {
		case 1:
			return "diffusers", folders[0], nil
		case 0:
			return "", "", errors.New("not a diffusers folder: no config.json beside a diffusion_pytorch_model.safetensors (or .bin)")
		}
		return "", "", fmt.Errorf("%d model folders (%s): choose the one to use", len(folders), strings.Join(folders, ", "))
	}
	if len(names) != 1 {
		return "", "", fmt.Errorf("%d files and no diffusers folder (config.json beside diffusion_pytorch_model.safetensors): choose one model file or one folder", len(names))
	}
	name := names[0]
	ext := strings.ToLower(path.Ext(name))
	switch {
	case from != "":
		return from, name, nil
	case ext == ".safetensors":
		f, err := safetensors.Read(files[name])
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", path.Base(name), err)
		}
		if _, ok := f.Metadata[model.KeyArch]; ok {
			return "", name, nil
		}
		if _, ok := f.Metadata["config"]; ok {
			return "toy2d", name, nil
		}
		return "", "", fmt.Errorf("%s: a safetensors file without a model description: choose the whole diffusers folder (config.json beside it), or convert it with 'diffuse convert'", path.Base(name))
	case path.Base(name) == "diffusion_pytorch_model.bin" || path.Base(name) == "config.json":
		return "", "", fmt.Errorf("%s alone: choose the whole diffusers folder (config.json and the weights)", path.Base(name))
	case ext == ".pt" || ext == ".pth" || ext == ".ckpt" || ext == ".bin":
		return "", "", fmt.Errorf("%s: say whether this is a lucidrains Trainer checkpoint or a score-SDE ScoreNet", path.Base(name))
	}
	return "", "", fmt.Errorf("%s: not a model file this page reads (a diffusers folder, a .safetensors file, a lucidrains .pt or a score-SDE .pth)", path.Base(name))
}
