package model

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/lucid"
	"github.com/diffuse-web/diffuse/core/tensor"
)

// A Family is one network family: the KeyArch value that names it in a
// converted file, how to read its config, and the checkpoint converter
// `diffuse convert --from` reaches it by. Each family registers itself
// from its own file (unet.go, scoresde.go, toy2d.go, lucid.go), so adding
// one touches no shared code.
type Family struct {
	Arch string
	// Parse checks config (KeyConfig's JSON) and returns the network it
	// describes, with the params the network reads them under (a family
	// may rename legacy weight names).
	Parse func(config json.RawMessage, params map[string]*tensor.Tensor) (Network, map[string]*tensor.Tensor, error)
	// From is the checkpoint kind convert's --from names; Convert reads
	// such a checkpoint, the file or folder name of fsys. The CLI passes
	// os.DirFS (ConvertPath), the page the files a visitor dropped (Files):
	// one converter for both.
	From    string
	Convert func(fsys fs.FS, name string, o ConvertOptions) (*Model, error)
}

// ConvertPath converts the checkpoint at path (a file, or a diffusers
// folder) through f.Convert over the OS file system, rooted at path's parent
// so that a diffusers folder's ../scheduler/ is in reach.
func (f *Family) ConvertPath(path string, o ConvertOptions) (*Model, error) {
	fsys, name, err := dirFS(path)
	if err != nil {
		return nil, err
	}
	return f.Convert(fsys, name, o)
}

// dirFS is os.DirFS of path's parent and path's name in it.
func dirFS(path string) (fs.FS, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	name := filepath.ToSlash(filepath.Base(abs))
	if !fs.ValidPath(name) || name == "." {
		return nil, "", fmt.Errorf("%s: not a file or folder to convert", path)
	}
	return os.DirFS(filepath.Dir(abs)), name, nil
}

// Network is a parsed config of one family.
type Network interface {
	// InShape is the [C,H,W] of one sample (H, W 0 when the family takes
	// any size and the config names none).
	InShape() []int
	// Classes is the number of class labels the network is conditioned on
	// (0 when unconditional).
	Classes() int
	// ProbeSize is the sample height and width New builds the network at
	// once, to check the config against the weights.
	ProbeSize() (height, width int)
	// Build makes the graph for a batch of samples of the given size,
	// refusing a size the network cannot take.
	Build(params map[string]*tensor.Tensor, batch, height, width int) (*graph.Graph, error)
}

// ConvertOptions are what a converter may need that the checkpoint does not
// record (convert's flags).
type ConvertOptions struct {
	Sigma float64 // scoresde: the VE SDE's sigma
	Size  int     // scoresde: the image side
	// Lucid returns lucidrains' overrides and whether to take the EMA
	// weights; it checks the flags, so it is called only for that family.
	Lucid func() (o lucid.Overrides, useEMA bool, err error)
}

var families = map[string]*Family{}

// register adds f to the table (from the family's init).
func register(f *Family) {
	if _, dup := families[f.Arch]; dup {
		panic("model: family " + f.Arch + " registered twice")
	}
	families[f.Arch] = f
}

// Families lists the registered families, by Arch.
func Families() []*Family {
	out := make([]*Family, 0, len(families))
	for _, f := range families {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Arch < out[j].Arch })
	return out
}

// Converter returns the family whose checkpoints convert's --from calls from.
func Converter(from string) (*Family, error) {
	var names []string
	for _, f := range Families() {
		if f.From == from && f.Convert != nil {
			return f, nil
		}
		names = append(names, f.From)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("--from %q: supported kinds: %s", from, strings.Join(names, ", "))
}
