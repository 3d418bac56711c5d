package torchpt

import (
	"strconv"

	"github.com/diffuse-web/diffuse/core/limits"
)

// Bounds on the walk in StateDict: shared sub-objects are visited once per
// path, so a small crafted graph (a list holding the same list twice, 20
// levels deep) has a million paths, and memoised long keys make long names.
const (
	maxStateDictVisits    = 1 << 24  // objects visited
	maxStateDictTensors   = 1 << 17  // names in the result (real checkpoints: a few thousand)
	maxStateDictNameBytes = 64 << 20 // bytes of all the dotted paths built
)

// StateDict flattens the tensors reachable from v into dotted names
// (dict keys, list/tuple indices; nested dicts join with "."), keeps those
// starting with prefix and strips it. Names come back in file order.
//
// Every name counts towards the checkpoint's Options.MaxTotalBytes as float32
// (numel·4 bytes), however many names reach one tensor and however few
// storage bytes back it: a result its caller could not convert within the
// limit is refused with ErrTooLarge before anything is converted.
//
// For a lucidrains-style checkpoint, StateDict(ckpt, "model.model.") gives
// the U-Net weights of the "model" entry; for a DataParallel state dict,
// StateDict(sd, "module.") drops the wrapper prefix.
func StateDict(v Value, prefix string) (map[string]*Tensor, []string, error) {
	w := &sdWalker{prefix: prefix, out: map[string]*Tensor{}, onPath: map[*OrderedDict]bool{}}
	switch v.(type) {
	case *OrderedDict, []any, Tuple, *Tensor:
	default:
		return nil, nil, errf(ErrUnsupported, "StateDict of a %s", typeName(v))
	}
	if err := w.walk(v, "", 0); err != nil {
		return nil, nil, err
	}
	return w.out, w.names, nil
}

type sdWalker struct {
	prefix    string
	out       map[string]*Tensor
	names     []string
	visits    int
	nameBytes int
	total     int64 // bytes the result takes as float32
	onPath    map[*OrderedDict]bool
}

func (w *sdWalker) join(path, part string) (string, error) {
	if path == "" {
		return part, nil
	}
	if w.nameBytes += len(path) + 1 + len(part); w.nameBytes > maxStateDictNameBytes {
		return "", errf(ErrTooLarge, "names longer than %s in all", limits.Bytes(maxStateDictNameBytes))
	}
	return path + "." + part, nil
}

// add counts one more name for x against x's checkpoint's MaxTotalBytes.
func (w *sdWalker) add(name string, x *Tensor) error {
	if len(w.out) >= maxStateDictTensors {
		return errf(ErrTooLarge, "more than %d tensors", maxStateDictTensors)
	}
	numel := int64(1)
	for _, d := range x.Shape {
		numel = limits.Mul(numel, int64(max(d, 0)))
	}
	w.total = limits.Add(w.total, limits.Mul(numel, 4))
	var limit int64
	if x.Storage != nil && x.Storage.a != nil {
		limit = x.Storage.a.opts.MaxTotalBytes
	} else {
		limit = DefaultOptions.withDefaults().MaxTotalBytes
	}
	if w.total > limit {
		return errf(ErrTooLarge, "the first %d tensors already take %s as float32 (the last, %q, is %d elements over a %d-element storage), over the %s limit on tensor data (MaxTotalBytes)",
			len(w.out)+1, limits.Bytes(w.total), quoteName(name), numel, storageNumel(x), limits.Bytes(limit))
	}
	return nil
}

func storageNumel(x *Tensor) int {
	if x.Storage == nil {
		return 0
	}
	return x.Storage.Numel
}

func (w *sdWalker) walk(v any, path string, depth int) error {
	if depth > DefaultOptions.MaxDepth {
		return errf(ErrTooLarge, "containers nested deeper than %d", DefaultOptions.MaxDepth)
	}
	if w.visits++; w.visits > maxStateDictVisits {
		return errf(ErrTooLarge, "more than %d objects to visit", maxStateDictVisits)
	}
	switch x := v.(type) {
	case *Tensor:
		if len(path) < len(w.prefix) || path[:len(w.prefix)] != w.prefix {
			return nil
		}
		name := path[len(w.prefix):]
		if _, dup := w.out[name]; dup {
			return errf(ErrUnsupported, "two tensors named %q", name)
		}
		if err := w.add(name, x); err != nil {
			return err
		}
		w.out[name] = x
		w.names = append(w.names, name)
	case *OrderedDict:
		if w.onPath[x] {
			return errf(ErrBadPickle, "dict contains itself")
		}
		w.onPath[x] = true
		defer delete(w.onPath, x)
		for i, k := range x.Keys {
			var part string
			switch kk := k.(type) {
			case string:
				part = kk
			case int64:
				part = strconv.FormatInt(kk, 10)
			default:
				// skipped, but counted: a dict of many such keys may be
				// reached by many paths
				if w.visits++; w.visits > maxStateDictVisits {
					return errf(ErrTooLarge, "more than %d objects to visit", maxStateDictVisits)
				}
				continue
			}
			p, err := w.join(path, part)
			if err != nil {
				return err
			}
			if err := w.walk(x.Values[i], p, depth+1); err != nil {
				return err
			}
		}
	case []any:
		return w.walkSeq(x, path, depth)
	case Tuple:
		return w.walkSeq(x, path, depth)
	}
	return nil
}

func (w *sdWalker) walkSeq(items []any, path string, depth int) error {
	for i, e := range items {
		p, err := w.join(path, strconv.Itoa(i))
		if err != nil {
			return err
		}
		if err := w.walk(e, p, depth+1); err != nil {
			return err
		}
	}
	return nil
}
