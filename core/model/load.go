package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/diffuse-web/diffuse/core/graph"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/safetensors"
	"github.com/diffuse-web/diffuse/core/schedule"
	"github.com/diffuse-web/diffuse/core/tensor"
	"github.com/diffuse-web/diffuse/core/unet"
)

// Model is a network's description and weights, independent of any backend.
type Model struct {
	Arch      string          // network family (KeyArch)
	Config    json.RawMessage // network config (KeyConfig)
	Scheduler json.RawMessage // noise schedule settings (KeyScheduler), may be nil
	NullClass int             // "no class" label for guidance; -1 when unconditional or unknown
	Params    map[string]*tensor.Tensor

	net Network // the parsed config, of the family Arch names
}

// InShape is the [C,H,W] of one sample (nil for a Model New did not make).
func (m *Model) InShape() []int {
	if m.net == nil {
		return nil
	}
	return m.net.InShape()
}

// Conditional reports whether the network takes class labels, and how many.
func (m *Model) Conditional() (bool, int) {
	if m.net == nil {
		return false, 0
	}
	n := m.net.Classes()
	return n > 0, n
}

// Graph builds the network for a batch of samples of the given height and
// width. Every backend gets its graph here, so this is where a request's
// batch and size meet the memory budget: the graph is built from shapes
// alone, and refused with a *limits.MemoryError when its weights and live
// activations exceed limits.Budget(), before a backend allocates anything.
func (m *Model) Graph(batch, height, width int) (*graph.Graph, error) {
	g, err := m.build(batch, height, width)
	if err != nil {
		return nil, err
	}
	mem := g.Memory()
	if err := limits.Check(fmt.Sprintf("the network for a batch of %d at %d×%d", batch, height, width),
		limits.Part{Name: "weights", Bytes: mem.Weights}, limits.Part{Name: "activations", Bytes: mem.Activations}); err != nil {
		return nil, err
	}
	return g, nil
}

// Memory is what one call of the network on a batch needs (see Graph).
func (m *Model) Memory(batch, height, width int) (graph.Memory, error) {
	g, err := m.build(batch, height, width)
	if err != nil {
		return graph.Memory{}, err
	}
	return g.Memory(), nil
}

// CheckRun refuses a sampling run before it starts when the network for
// calls of `calls` samples (the batch, doubled with guidance, or
// (1+probes)·batch for likelihood), its activations, a sampler's state for
// `batch` samples and any extra parts (a CLI's collected output) would not
// fit the memory budget together.
func (m *Model) CheckRun(batch, calls, height, width int, extra ...limits.Part) error {
	if err := limits.Int("batch", int64(batch), 1, limits.MaxBatch); err != nil {
		return err
	}
	mem, err := m.Memory(calls, height, width)
	if err != nil {
		return err
	}
	c := 1
	if s := m.InShape(); len(s) == 3 {
		c = s[0]
	}
	parts := append([]limits.Part{{Name: "weights", Bytes: mem.Weights}, {Name: "activations", Bytes: mem.Activations},
		{Name: "sampler state", Bytes: limits.SamplerState(batch, c*height*width)}}, extra...)
	return limits.Check(fmt.Sprintf("sampling a batch of %d at %d×%d", batch, height, width), parts...)
}

func (m *Model) build(batch, height, width int) (*graph.Graph, error) {
	if err := limits.Int("batch", int64(batch), 1, limits.MaxBatch); err != nil {
		return nil, err
	}
	if err := limits.Int("height", int64(height), 1, limits.MaxSide); err != nil {
		return nil, err
	}
	if err := limits.Int("width", int64(width), 1, limits.MaxSide); err != nil {
		return nil, err
	}
	if m.net == nil {
		return nil, fmt.Errorf("unknown network family %q", m.Arch)
	}
	return m.net.Build(m.Params, batch, height, width)
}

// New checks the config against the weights by building the network once,
// so a model that loads is a model that runs.
func New(arch string, config, scheduler json.RawMessage, params map[string]*tensor.Tensor) (*Model, error) {
	m := &Model{Arch: arch, Config: config, Scheduler: scheduler, Params: params, NullClass: -1}
	if err := finiteWeights(params); err != nil {
		return nil, err
	}
	// The schedule is checked here too, so a converted file never stores one
	// that every later sample would refuse (or that would exhaust memory).
	if s := strings.TrimSpace(string(scheduler)); s != "" && s != "null" {
		if _, err := schedule.Parse(scheduler); err != nil {
			return nil, fmt.Errorf("the scheduler settings: %w", err)
		}
	}
	f, ok := families[arch]
	if !ok {
		return nil, fmt.Errorf("unknown network family %q", arch)
	}
	net, params, err := f.Parse(config, params)
	if err != nil {
		return nil, err
	}
	m.net, m.Params = net, params
	h, w := net.ProbeSize()
	if _, err := m.Graph(1, h, w); err != nil {
		return nil, err
	}
	return m, nil
}

// FromSafetensors reads one of our converted files: the network, schedule and
// null class travel in __metadata__.
func FromSafetensors(f *safetensors.File) (*Model, error) {
	arch, ok := f.Metadata[KeyArch]
	if !ok {
		return nil, errors.New("not a converted model file: no " + KeyArch + " metadata (convert it with 'diffuse convert')")
	}
	if v := f.Metadata[KeyFormat]; v != "1" {
		return nil, fmt.Errorf("unsupported model file format version %q (this build reads version 1)", v)
	}
	params, err := tensors(f)
	if err != nil {
		return nil, err
	}
	var sched json.RawMessage
	if s, ok := f.Metadata[KeyScheduler]; ok {
		sched = json.RawMessage(s)
	}
	m, err := New(arch, json.RawMessage(f.Metadata[KeyConfig]), sched, params)
	if err != nil {
		return nil, err
	}
	if s, ok := f.Metadata[KeyNullClass]; ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("metadata %s = %q is not an integer", KeyNullClass, s)
		}
		if cond, classes := m.Conditional(); n < -1 || (cond && n >= classes) {
			return nil, &limits.Error{Field: "metadata " + KeyNullClass, Value: n, Limit: fmt.Sprintf("must be -1 (none) or a class label 0…%d", classes-1)}
		}
		m.NullClass = n
	}
	return m, nil
}

func tensors(f *safetensors.File) (map[string]*tensor.Tensor, error) {
	params := make(map[string]*tensor.Tensor, len(f.Tensors))
	for i := range f.Tensors {
		t, err := f.Tensors[i].Tensor()
		if err != nil {
			return nil, err
		}
		params[f.Tensors[i].Name] = t
	}
	return params, nil
}

// FromDiffusersDir reads a diffusers save_pretrained folder from disk
// (FromDiffusersFS over the OS file system).
func FromDiffusersDir(dir string) (*Model, error) {
	fsys, name, err := dirFS(dir)
	if err != nil {
		return nil, err
	}
	return FromDiffusersFS(fsys, name)
}

// FromDiffusersFS reads the diffusers save_pretrained folder dir of fsys:
// config.json and diffusion_pytorch_model.safetensors (or, when that is
// absent, diffusion_pytorch_model.bin through the restricted unpickler),
// plus the scheduler settings from scheduler_config.json beside them or in
// ../scheduler/ (a pipeline folder's layout) when present.
func FromDiffusersFS(fsys fs.FS, dir string) (*Model, error) {
	config, err := limits.ReadFS(fsys, path.Join(dir, "config.json"), limits.MaxConfigBytes)
	if err != nil {
		return nil, err
	}
	var params map[string]*tensor.Tensor
	stPath, binPath := path.Join(dir, "diffusion_pytorch_model.safetensors"), path.Join(dir, diffusersBinName)
	_, serr := fs.Stat(fsys, stPath)
	if _, berr := fs.Stat(fsys, binPath); errors.Is(serr, fs.ErrNotExist) && berr == nil {
		// Older folders ship pickled weights only.
		if params, err = readDiffusersBin(fsys, binPath); err != nil {
			return nil, err
		}
	} else {
		f, err := readSafetensors(fsys, stPath)
		if err != nil {
			return nil, err
		}
		if params, err = tensors(f); err != nil {
			return nil, err
		}
	}
	var sched json.RawMessage
	candidates := []string{path.Join(dir, "scheduler_config.json")}
	if dir != "." {
		candidates = append(candidates, path.Join(path.Dir(dir), "scheduler", "scheduler_config.json"))
	}
	for _, p := range candidates {
		b, err := limits.ReadFS(fsys, p, limits.MaxConfigBytes)
		if err == nil {
			sched = b
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return New(ArchDiffusersUNet2D, config, sched, params)
}

// readSafetensors reads and parses the safetensors file name of fsys, its
// size checked against safetensors.MaxFileSize before it is read.
func readSafetensors(fsys fs.FS, name string) (*safetensors.File, error) {
	data, err := limits.ReadFS(fsys, name, safetensors.MaxFileSize)
	if err != nil {
		return nil, err
	}
	return safetensors.Read(data)
}

// Load opens a converted .safetensors file or a diffusers model folder.
func Load(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return FromDiffusersDir(path)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return FromSafetensors(f)
}

// Save writes the model as one self-describing safetensors file with weights
// in dtype (F16, BF16 or F32).
func (m *Model) Save(path string, dtype safetensors.DType) error {
	entries, meta := m.file(dtype)
	return safetensors.WriteFile(path, entries, meta)
}

// Write is Save to w (the page keeps a converted model in browser storage).
func (m *Model) Write(w io.Writer, dtype safetensors.DType) error {
	entries, meta := m.file(dtype)
	return safetensors.Write(w, entries, meta)
}

// file is the model as safetensors entries (sorted by name) and metadata.
func (m *Model) file(dtype safetensors.DType) ([]safetensors.Entry, map[string]string) {
	meta := map[string]string{KeyFormat: "1", KeyArch: m.Arch, KeyConfig: string(m.Config)}
	if m.Scheduler != nil {
		meta[KeyScheduler] = string(m.Scheduler)
	}
	if m.NullClass >= 0 {
		meta[KeyNullClass] = strconv.Itoa(m.NullClass)
	}
	names := make([]string, 0, len(m.Params))
	for n := range m.Params {
		if m.Arch == ArchDiffusersUNet2D && strings.HasSuffix(n, unet.FixedSuffix) {
			continue // made by the loader (unet.FixedParams)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	entries := make([]safetensors.Entry, len(names))
	for i, n := range names {
		entries[i] = safetensors.Entry{Name: n, Shape: m.Params[n].Shape, Data: m.Params[n].Data, DType: dtype}
	}
	return entries, meta
}

// finiteWeights refuses NaN and infinite weights, which would turn every
// output into NaN without any other sign (names sorted, so the error is stable).
func finiteWeights(params map[string]*tensor.Tensor) error {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := limits.FiniteValues("weight "+n, params[n].Data); err != nil {
			return err
		}
	}
	return nil
}
