package torchpt

import (
	"encoding/binary"
	"math"

	"github.com/diffuse-web/diffuse/core/limits"
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

	index map[dictKey]int // made on the first entry
}

// Item is one key/value pair of an OrderedDict.
type Item struct {
	Key   any
	Value any
}

func newDict(ordered bool) *OrderedDict {
	return &OrderedDict{Ordered: ordered}
}

// Len is the number of entries.
func (d *OrderedDict) Len() int { return len(d.Keys) }

// Get looks up a string key.
func (d *OrderedDict) Get(key string) (any, bool) {
	return d.lookup(dictKey{kind: keyStr, s: key})
}

// GetKey looks up any hashable key (string, int64, float64, bool, nil, []byte, Tuple).
func (d *OrderedDict) GetKey(key any) (any, bool) {
	k, err := hashKey(key, nil)
	if err != nil {
		return nil, false
	}
	return d.lookup(k)
}

func (d *OrderedDict) lookup(k dictKey) (any, bool) {
	if len(d.Keys) == 0 {
		return nil, false
	}
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
	d.index = make(map[dictKey]int, len(d.Keys))
	for i, k := range d.Keys {
		if h, err := hashKey(k, nil); err == nil {
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
func (d *OrderedDict) set(k, v any, maxLen int) error { return d.put(k, v, maxLen, nil) }

// put is set charging what it hashes and allocates to m.
func (d *OrderedDict) put(k, v any, maxLen int, m *meter) error {
	h, err := hashKey(k, m)
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
	cost := int64(costIndex)
	if len(d.Keys) == 0 {
		cost += costTable
	}
	if err := m.charge(cost, "a dict entry"); err != nil {
		return err
	}
	if d.Keys, err = grow(d.Keys, 1, m, "dict keys"); err != nil {
		return err
	}
	if d.Values, err = grow(d.Values, 1, m, "dict values"); err != nil {
		return err
	}
	d.index[h] = len(d.Keys)
	d.Keys = append(d.Keys, k)
	d.Values = append(d.Values, v)
	return nil
}

// dictKey is a dict key's identity, mirroring Python's equality (True == 1
// == 1.0). A string key is held as itself, not copied; bytes and tuple keys
// are encoded into s.
type dictKey struct {
	s    string
	n    uint64 // keyInt: the value; keyFloat: its bits
	kind keyKind
}

type keyKind uint8

const (
	keyNone keyKind = iota + 1
	keyInt
	keyFloat
	keyStr
	keyBytes
	keyTuple
)

// scalarKey is the key of a value other than bytes and tuples.
func scalarKey(k any) (dictKey, bool) {
	switch v := k.(type) {
	case string:
		return dictKey{kind: keyStr, s: v}, true
	case int64:
		return dictKey{kind: keyInt, n: uint64(v)}, true
	case bool:
		if v {
			return dictKey{kind: keyInt, n: 1}, true
		}
		return dictKey{kind: keyInt}, true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return dictKey{kind: keyInt, n: uint64(int64(v))}, true
		}
		return dictKey{kind: keyFloat, n: math.Float64bits(v)}, true
	case nil:
		return dictKey{kind: keyNone}, true
	}
	return dictKey{}, false
}

// hashKey gives the key of a hashable value, charging m for the bytes
// hashed (a string key's length) or allocated (a bytes or tuple key's
// encoding). A tuple key whose encoding would pass maxTupleKeyBytes is
// refused before it is built.
func hashKey(k any, m *meter) (dictKey, error) {
	switch v := k.(type) {
	case string:
		if err := m.charge(int64(len(v)), "hashing a dict key"); err != nil {
			return dictKey{}, err
		}
		return dictKey{kind: keyStr, s: v}, nil
	case []byte:
		if err := m.charge(int64(len(v))+costString, "a bytes dict key"); err != nil {
			return dictKey{}, err
		}
		return dictKey{kind: keyBytes, s: string(v)}, nil
	case Tuple:
		n, err := tupleKeySize(v, 0, 0)
		if err != nil {
			return dictKey{}, err
		}
		if err := m.charge(int64(n)+costString, "a tuple dict key"); err != nil {
			return dictKey{}, err
		}
		b := appendTupleKey(make([]byte, 0, n), v)
		return dictKey{kind: keyTuple, s: string(b)}, nil
	}
	if h, ok := scalarKey(k); ok {
		return h, nil
	}
	return dictKey{}, errf(ErrBadPickle, "unhashable dict key of type %s", typeName(k))
}

// tupleKeySize is the length appendTupleKey gives t, added to size, checked
// against maxTupleKeyBytes as it goes: every element adds at least one
// byte, so the walk stops within maxTupleKeyBytes steps however much the
// tuple shares.
func tupleKeySize(t Tuple, size, depth int) (int, error) {
	if depth > 64 {
		return 0, errf(ErrBadPickle, "dict key nested too deeply")
	}
	size += 1 + uvarintLen(uint64(len(t)))
	for _, e := range t {
		if size > maxTupleKeyBytes {
			break
		}
		switch v := e.(type) {
		case string:
			size += 1 + uvarintLen(uint64(len(v))) + len(v)
		case []byte:
			size += 1 + uvarintLen(uint64(len(v))) + len(v)
		case Tuple:
			var err error
			if size, err = tupleKeySize(v, size, depth+1); err != nil {
				return 0, err
			}
		default:
			h, ok := scalarKey(e)
			if !ok {
				return 0, errf(ErrBadPickle, "unhashable dict key: a tuple holding a %s", typeName(e))
			}
			size++
			if h.kind != keyNone {
				size += 8
			}
		}
	}
	if size > maxTupleKeyBytes {
		return 0, errf(ErrTooLarge, "tuple dict key longer than %s", limits.Bytes(maxTupleKeyBytes))
	}
	return size, nil
}

// appendTupleKey encodes t (already checked by tupleKeySize) without
// ambiguity: per element a kind byte, then 8 bytes of value, or a length
// and the bytes, or a count and the elements.
func appendTupleKey(b []byte, t Tuple) []byte {
	b = append(b, byte(keyTuple))
	b = binary.AppendUvarint(b, uint64(len(t)))
	for _, e := range t {
		switch v := e.(type) {
		case string:
			b = append(b, byte(keyStr))
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case []byte:
			b = append(b, byte(keyBytes))
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case Tuple:
			b = appendTupleKey(b, v)
		default:
			h, _ := scalarKey(e)
			b = append(b, byte(h.kind))
			if h.kind != keyNone {
				b = binary.LittleEndian.AppendUint64(b, h.n)
			}
		}
	}
	return b
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
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
// nesting are refused. What it allocates is charged to the unpickler's meter.
type finalizer struct {
	opts   *Options
	m      *meter
	lists  map[*listBox][]any
	tuples map[*any]Tuple
	dicts  map[*OrderedDict]bool // false: in progress, true: done
	active map[*listBox]bool
	tupAct map[*any]bool
}

func finalize(v any, opts *Options, m *meter) (any, error) {
	f := &finalizer{opts: opts, m: m, lists: map[*listBox][]any{}, tuples: map[*any]Tuple{},
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
		if err := f.m.charge(limits.Add(limits.Mul(int64(len(x.items)), costSlot), costSlice+2*costSeen), "a list"); err != nil {
			return nil, err
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
			return v, nil
		}
		id := &x[0]
		if out, ok := f.tuples[id]; ok {
			return out, nil
		}
		if f.tupAct[id] {
			return nil, errf(ErrBadPickle, "tuple contains itself")
		}
		if err := f.m.charge(limits.Add(limits.Mul(int64(len(x)), costSlot), costSlice+2*costSeen), "a tuple"); err != nil {
			return nil, err
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
		if err := f.m.charge(costSeen, "a dict"); err != nil {
			return nil, err
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
			// a converted key equals the original (lists are unhashable,
			// so keys hold no lists): the index stays valid
			x.Keys[i], x.Values[i] = k, val
		}
		for name, a := range x.Attrs {
			c, err := f.conv(a, depth+1)
			if err != nil {
				return nil, err
			}
			x.Attrs[name] = c
		}
		f.dicts[x] = true
		return x, nil
	}
	return nil, errf(ErrBadPickle, "unexpected value of type %T", v)
}
