package torchpt

import "strconv"

// maxStateDictVisits bounds the walk in StateDict: shared sub-objects are
// visited once per path, so a crafted graph could otherwise blow up.
const maxStateDictVisits = 1 << 24

// StateDict flattens the tensors reachable from v into dotted names
// (dict keys, list/tuple indices; nested dicts join with "."), keeps those
// starting with prefix and strips it. Names come back in file order.
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
	prefix string
	out    map[string]*Tensor
	names  []string
	visits int
	onPath map[*OrderedDict]bool
}

func join(path, part string) string {
	if path == "" {
		return part
	}
	return path + "." + part
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
				continue
			}
			if err := w.walk(x.Values[i], join(path, part), depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := w.walk(e, join(path, strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	case Tuple:
		for i, e := range x {
			if err := w.walk(e, join(path, strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
