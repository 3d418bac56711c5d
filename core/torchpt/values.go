package torchpt

import (
	"math"
	"strconv"
	"strings"
)

// Tuple is a Python tuple.
type Tuple []any

// OrderedDict is a Python dict or collections.OrderedDict, in insertion order.
type OrderedDict struct {
	Keys   []any
	Values []any
	// Ordered is true for collections.OrderedDict, false for a plain dict.
	Ordered bool
	// Attrs holds instance attributes set by BUILD, e.g. the "_metadata"
	// that nn.Module.state_dict() attaches. Nil when there are none.
	Attrs map[string]any

	index map[string]int
}

// Item is one key/value pair of an OrderedDict.
type Item struct {
	Key   any
	Value any
}

func newDict(ordered bool) *OrderedDict {
	return &OrderedDict{Ordered: ordered, index: map[string]int{}}
}

// Len is the number of entries.
func (d *OrderedDict) Len() int { return len(d.Keys) }

// Get looks up a string key.
func (d *OrderedDict) Get(key string) (any, bool) {
	return d.lookup("s" + key)
}

// GetKey looks up any hashable key (string, int64, float64, bool, nil, []byte, Tuple).
func (d *OrderedDict) GetKey(key any) (any, bool) {
	k, err := hashKey(key, 0)
	if err != nil {
		return nil, false
	}
	return d.lookup(k)
}

func (d *OrderedDict) lookup(k string) (any, bool) {
	if d.index == nil {
		d.reindex()
	}
	i, ok := d.index[k]
	if !ok {
		return nil, false
	}
	return d.Values[i], true
}

func (d *OrderedDict) reindex() {
	d.index = make(map[string]int, len(d.Keys))
	for i, k := range d.Keys {
		if h, err := hashKey(k, 0); err == nil {
			d.index[h] = i
		}
	}
}

// Items returns the entries in order.
func (d *OrderedDict) Items() []Item {
	out := make([]Item, len(d.Keys))
	for i := range d.Keys {
		out[i] = Item{d.Keys[i], d.Values[i]}
	}
	return out
}

// StringKeys returns the string keys in order (other keys are skipped).
func (d *OrderedDict) StringKeys() []string {
	var out []string
	for _, k := range d.Keys {
		if s, ok := k.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// set inserts or replaces (keeping the first position, as Python does).
func (d *OrderedDict) set(k, v any, maxLen int) error {
	h, err := hashKey(k, 0)
	if err != nil {
		return err
	}
	if d.index == nil {
		d.reindex()
	}
	if i, ok := d.index[h]; ok {
		d.Values[i] = v
		return nil
	}
	if len(d.Keys) >= maxLen {
		return errf(ErrTooLarge, "dict exceeds %d entries", maxLen)
	}
	d.index[h] = len(d.Keys)
	d.Keys = append(d.Keys, k)
	d.Values = append(d.Values, v)
	return nil
}

// hashKey gives a canonical string for a hashable value, mirroring Python's
// equality (True == 1 == 1.0).
func hashKey(k any, depth int) (string, error) {
	if depth > 64 {
		return "", errf(ErrBadPickle, "dict key nested too deeply")
	}
	switch v := k.(type) {
	case string:
		return "s" + v, nil
	case int64:
		return "i" + strconv.FormatInt(v, 10), nil
	case bool:
		if v {
			return "i1", nil
		}
		return "i0", nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return "i" + strconv.FormatInt(int64(v), 10), nil
		}
		return "f" + strconv.FormatUint(math.Float64bits(v), 16), nil
	case nil:
		return "n", nil
	case []byte:
		return "b" + string(v), nil
	case Tuple:
		var sb strings.Builder
		sb.WriteString("t")
		sb.WriteString(strconv.Itoa(len(v)))
		for _, e := range v {
			h, err := hashKey(e, depth+1)
			if err != nil {
				return "", err
			}
			sb.WriteString(",")
			sb.WriteString(strconv.Itoa(len(h)))
			sb.WriteString(":")
			sb.WriteString(h)
		}
		return sb.String(), nil
	}
	return "", errf(ErrBadPickle, "unhashable dict key of type %s", typeName(k))
}

// listBox is a Python list while unpickling: lists are mutable and may be
// shared through the memo, so they are converted to []any only at the end.
type listBox struct{ items []any }

func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case *listBox, []any:
		return "list"
	case Tuple:
		return "tuple"
	case *OrderedDict:
		return "dict"
	case *Tensor:
		return "Tensor"
	case *Storage:
		return "Storage"
	case *global:
		return "global " + x.String()
	}
	return "unknown"
}

// finalizer converts the unpickler's object graph into exported values:
// lists become []any, shared objects stay shared, cycles and excessive
// nesting are refused.
type finalizer struct {
	opts   *Options
	lists  map[*listBox][]any
	tuples map[*any]Tuple
	dicts  map[*OrderedDict]bool // false: in progress, true: done
	active map[*listBox]bool
	tupAct map[*any]bool
}

func finalize(v any, opts *Options) (any, error) {
	f := &finalizer{opts: opts, lists: map[*listBox][]any{}, tuples: map[*any]Tuple{},
		dicts: map[*OrderedDict]bool{}, active: map[*listBox]bool{}, tupAct: map[*any]bool{}}
	return f.conv(v, 0)
}

func (f *finalizer) conv(v any, depth int) (any, error) {
	if depth > f.opts.MaxDepth {
		return nil, errf(ErrTooLarge, "containers nested deeper than %d", f.opts.MaxDepth)
	}
	switch x := v.(type) {
	case nil, bool, int64, float64, string, []byte, *Tensor, *Storage:
		return v, nil
	case *global:
		return nil, errf(ErrUnsupported, "bare reference to %s in the result", x)
	case *listBox:
		if out, ok := f.lists[x]; ok {
			return out, nil
		}
		if f.active[x] {
			return nil, errf(ErrBadPickle, "list contains itself")
		}
		f.active[x] = true
		out := make([]any, len(x.items))
		for i, e := range x.items {
			c, err := f.conv(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		delete(f.active, x)
		f.lists[x] = out
		return out, nil
	case Tuple:
		if len(x) == 0 {
			return Tuple{}, nil
		}
		id := &x[0]
		if out, ok := f.tuples[id]; ok {
			return out, nil
		}
		if f.tupAct[id] {
			return nil, errf(ErrBadPickle, "tuple contains itself")
		}
		f.tupAct[id] = true
		out := make(Tuple, len(x))
		for i, e := range x {
			c, err := f.conv(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		delete(f.tupAct, id)
		f.tuples[id] = out
		return out, nil
	case *OrderedDict:
		done, seen := f.dicts[x]
		if seen {
			if !done {
				return nil, errf(ErrBadPickle, "dict contains itself")
			}
			return x, nil
		}
		f.dicts[x] = false
		for i := range x.Keys {
			k, err := f.conv(x.Keys[i], depth+1)
			if err != nil {
				return nil, err
			}
			val, err := f.conv(x.Values[i], depth+1)
			if err != nil {
				return nil, err
			}
			x.Keys[i], x.Values[i] = k, val
		}
		for name, a := range x.Attrs {
			c, err := f.conv(a, depth+1)
			if err != nil {
				return nil, err
			}
			x.Attrs[name] = c
		}
		x.reindex()
		f.dicts[x] = true
		return x, nil
	}
	return nil, errf(ErrBadPickle, "unexpected value of type %T", v)
}
