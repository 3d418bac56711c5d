package torchpt

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/diffuse-web/diffuse/core/limits"
)

type globalKind int

const (
	gOrderedDict globalKind = iota + 1
	gRebuildTensorV2
	gRebuildTensor
	gRebuildParameter
	gRebuildParameterWithState
	gRebuildFromTypeV2
	gStorageType
	gTensorType
	gParameterType
	gCodecsEncode
	gTorchSize
)

// global is a resolved, allowlisted module attribute. It is only a tag:
// nothing named by a pickle is ever looked up or run.
type global struct {
	module, name string
	kind         globalKind
	dtype        dtypeInfo // for gStorageType
}

func (g *global) String() string { return g.module + "." + g.name }

var allowedGlobals = map[string]globalKind{
	"collections.OrderedDict":                    gOrderedDict,
	"torch._utils._rebuild_tensor_v2":            gRebuildTensorV2,
	"torch._utils._rebuild_tensor":               gRebuildTensor,
	"torch._utils._rebuild_parameter":            gRebuildParameter,
	"torch._utils._rebuild_parameter_with_state": gRebuildParameterWithState,
	"torch._tensor._rebuild_from_type_v2":        gRebuildFromTypeV2,
	"torch.Tensor":                               gTensorType,
	"torch._tensor.Tensor":                       gTensorType,
	"torch.nn.parameter.Parameter":               gParameterType,
	"_codecs.encode":                             gCodecsEncode,
	"torch.Size":                                 gTorchSize,
}

// resolveGlobal maps GLOBAL/STACK_GLOBAL names onto the allowlist.
func resolveGlobal(module, name string) (*global, error) {
	full := module + "." + name
	if k, ok := allowedGlobals[full]; ok {
		return &global{module: module, name: name, kind: k}, nil
	}
	if full == "torch.storage.UntypedStorage" {
		return &global{module: module, name: name, kind: gStorageType, dtype: storageTypes["UntypedStorage"]}, nil
	}
	if module == "torch" && strings.HasSuffix(name, "Storage") {
		if dt, ok := storageTypes[name]; ok {
			return &global{module: module, name: name, kind: gStorageType, dtype: dt}, nil
		}
		return nil, errf(ErrUnsupported, "storage type %s", quoteName(full))
	}
	return nil, errf(ErrForbiddenGlobal, "%s is not on the allowlist", quoteName(full))
}

// quoteName keeps hostile names printable and short in error messages.
func quoteName(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\n\r\x00") {
		return strconv.Quote(s)
	}
	return s
}

// call evaluates REDUCE for an allowlisted callable, charging what it
// builds to m.
func call(g *global, args Tuple, opts *Options, m *meter) (any, error) {
	switch g.kind {
	case gOrderedDict:
		return newObj(g, args, opts, m)
	case gTorchSize:
		if len(args) != 1 {
			return nil, errf(ErrBadPickle, "torch.Size takes 1 argument, got %d", len(args))
		}
		items, ok := sequence(args[0])
		if !ok {
			return nil, errf(ErrBadPickle, "torch.Size of a %s", typeName(args[0]))
		}
		for _, it := range items {
			if _, ok := it.(int64); !ok {
				return nil, errf(ErrBadPickle, "torch.Size element is a %s", typeName(it))
			}
		}
		if err := m.charge(limits.Add(limits.Mul(int64(len(items)), costSlot), costSlice), "a torch.Size"); err != nil {
			return nil, err
		}
		return append(Tuple{}, items...), nil
	case gCodecsEncode:
		// protocol 2 spells bytes as _codecs.encode(str, "latin1")
		if len(args) != 2 {
			return nil, errf(ErrBadPickle, "_codecs.encode takes 2 arguments, got %d", len(args))
		}
		s, ok1 := args[0].(string)
		enc, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, errf(ErrBadPickle, "_codecs.encode(%s, %s)", typeName(args[0]), typeName(args[1]))
		}
		switch strings.ToLower(enc) {
		case "latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1":
		default:
			return nil, errf(ErrUnsupported, "_codecs.encode with encoding %q", quoteName(enc))
		}
		if err := m.charge(int64(len(s))+costSlice, "_codecs.encode"); err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				return nil, errf(ErrBadPickle, "_codecs.encode: character U+%04X is not latin-1", r)
			}
			out = append(out, byte(r))
		}
		return out, nil
	case gRebuildTensorV2, gRebuildTensor:
		want := 4
		if g.kind == gRebuildTensorV2 {
			want = 6
			if len(args) == 7 {
				want = 7
			}
		}
		if len(args) != want {
			return nil, errf(ErrBadPickle, "%s takes %d arguments, got %d", g, want, len(args))
		}
		st, ok := args[0].(*Storage)
		if !ok {
			return nil, errf(ErrBadPickle, "%s: first argument is a %s, not a storage", g, typeName(args[0]))
		}
		off, ok := args[1].(int64)
		if !ok {
			return nil, errf(ErrBadPickle, "%s: storage offset is a %s", g, typeName(args[1]))
		}
		// the size and stride are read (≤ 1<<10 entries each) and kept
		sz, _ := sequence(args[2])
		sd, _ := sequence(args[3])
		if err := m.charge(costTensor+int64(min(len(sz), 1<<10)+min(len(sd), 1<<10))*32, "a tensor"); err != nil {
			return nil, err
		}
		size, err := intSeq(args[2], "size")
		if err != nil {
			return nil, err
		}
		stride, err := intSeq(args[3], "stride")
		if err != nil {
			return nil, err
		}
		t, err := newTensor(st, off, size, stride, opts)
		if err != nil {
			return nil, err
		}
		if len(args) > 4 {
			rg, err := truth(args[4], "requires_grad")
			if err != nil {
				return nil, err
			}
			t.RequiresGrad = rg
			if err := checkHooks(args[5]); err != nil {
				return nil, err
			}
		}
		return t, nil
	case gRebuildParameter, gRebuildParameterWithState:
		want := 3
		if g.kind == gRebuildParameterWithState {
			want = 4
		}
		if len(args) != want {
			return nil, errf(ErrBadPickle, "%s takes %d arguments, got %d", g, want, len(args))
		}
		t, ok := args[0].(*Tensor)
		if !ok {
			return nil, errf(ErrBadPickle, "%s of a %s", g, typeName(args[0]))
		}
		rg, err := truth(args[1], "requires_grad")
		if err != nil {
			return nil, err
		}
		if err := checkHooks(args[2]); err != nil {
			return nil, err
		}
		if err := m.charge(costTensor, "a parameter"); err != nil {
			return nil, err
		}
		p := *t
		p.RequiresGrad, p.Parameter = rg, true
		return &p, nil
	case gRebuildFromTypeV2:
		// _rebuild_from_type_v2(func, new_type, args, state)
		if len(args) != 4 {
			return nil, errf(ErrBadPickle, "%s takes 4 arguments, got %d", g, len(args))
		}
		fn, ok := args[0].(*global)
		if !ok || (fn.kind != gRebuildTensorV2 && fn.kind != gRebuildTensor && fn.kind != gRebuildParameter &&
			fn.kind != gRebuildParameterWithState) {
			return nil, errf(ErrForbiddenGlobal, "%s calls a %s", g, typeName(args[0]))
		}
		typ, ok := args[1].(*global)
		if !ok || (typ.kind != gTensorType && typ.kind != gParameterType) {
			return nil, errf(ErrForbiddenGlobal, "%s to type %s", g, typeName(args[1]))
		}
		inner, ok := args[2].(Tuple)
		if !ok {
			return nil, errf(ErrBadPickle, "%s: arguments are a %s", g, typeName(args[2]))
		}
		v, err := call(fn, inner, opts, m)
		if err != nil {
			return nil, err
		}
		t, ok := v.(*Tensor)
		if !ok {
			return nil, errf(ErrBadPickle, "%s: %s did not build a tensor", g, fn)
		}
		if typ.kind == gParameterType {
			if err := m.charge(costTensor, "a parameter"); err != nil {
				return nil, err
			}
			p := *t
			p.Parameter = true
			t = &p
		}
		return t, nil
	}
	return nil, errf(ErrForbiddenGlobal, "%s may not be called", g)
}

// newObj evaluates NEWOBJ (cls.__new__(cls, *args)); only dicts are built this way.
func newObj(g *global, args Tuple, opts *Options, m *meter) (any, error) {
	if g.kind != gOrderedDict {
		return nil, errf(ErrForbiddenGlobal, "%s may not be instantiated", g)
	}
	if err := m.charge(costDict, "an OrderedDict"); err != nil {
		return nil, err
	}
	d := newDict(true)
	switch len(args) {
	case 0:
		return d, nil
	case 1:
	default:
		return nil, errf(ErrBadPickle, "OrderedDict takes at most 1 argument, got %d", len(args))
	}
	switch src := args[0].(type) {
	case *OrderedDict:
		for i := range src.Keys {
			if err := d.put(src.Keys[i], src.Values[i], opts.MaxContainerLen, m); err != nil {
				return nil, err
			}
		}
		return d, nil
	default:
		items, ok := sequence(src)
		if !ok {
			return nil, errf(ErrBadPickle, "OrderedDict of a %s", typeName(src))
		}
		for _, it := range items {
			pair, ok := sequence(it)
			if !ok || len(pair) != 2 {
				return nil, errf(ErrBadPickle, "OrderedDict item is not a pair")
			}
			if err := d.put(pair[0], pair[1], opts.MaxContainerLen, m); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
}

// build applies BUILD: only dict attribute state (e.g. state_dict's _metadata).
func build(obj, state any, m *meter) error {
	d, ok := obj.(*OrderedDict)
	if !ok {
		return errf(ErrUnsupported, "BUILD on a %s", typeName(obj))
	}
	if t, ok := state.(Tuple); ok && len(t) == 2 && t[1] == nil {
		state = t[0] // (dict_state, slot_state=None)
	}
	switch s := state.(type) {
	case nil:
		return nil
	case *OrderedDict:
		for i, k := range s.Keys {
			name, ok := k.(string)
			if !ok {
				return errf(ErrBadPickle, "BUILD state key is a %s", typeName(k))
			}
			// each key is hashed (BUILD may repeat with a shared state) and
			// a new one is kept
			cost := int64(len(name)) + costSlot
			if _, ok := d.Attrs[name]; !ok {
				cost += costIndex
				if d.Attrs == nil {
					cost += costTable
				}
			}
			if err := m.charge(cost, "an attribute"); err != nil {
				return err
			}
			if d.Attrs == nil {
				d.Attrs = map[string]any{}
			}
			d.Attrs[name] = s.Values[i]
		}
		return nil
	}
	return errf(ErrBadPickle, "BUILD state is a %s", typeName(state))
}

// sequence returns the items of a tuple or list.
func sequence(v any) ([]any, bool) {
	switch x := v.(type) {
	case Tuple:
		return x, true
	case *listBox:
		return x.items, true
	case []any:
		return x, true
	}
	return nil, false
}

func intSeq(v any, what string) ([]int64, error) {
	items, ok := sequence(v)
	if !ok {
		return nil, errf(ErrBadTensor, "tensor %s is a %s", what, typeName(v))
	}
	if len(items) > 1<<10 {
		return nil, errf(ErrTooLarge, "tensor %s has %d entries", what, len(items))
	}
	out := make([]int64, len(items))
	for i, it := range items {
		n, ok := it.(int64)
		if !ok {
			return nil, errf(ErrBadTensor, "tensor %s entry is a %s", what, typeName(it))
		}
		out[i] = n
	}
	return out, nil
}

func truth(v any, what string) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	}
	return false, errf(ErrBadPickle, "%s is a %s", what, typeName(v))
}

// checkHooks accepts the backward_hooks argument: an (empty) OrderedDict or None.
func checkHooks(v any) error {
	switch x := v.(type) {
	case nil:
		return nil
	case *OrderedDict:
		if x.Len() != 0 {
			return errf(ErrUnsupported, "tensor with %d backward hooks", x.Len())
		}
		return nil
	}
	return errf(ErrBadPickle, "backward_hooks is a %s", typeName(v))
}

// persistentLoad resolves ('storage', <storage type>, key, location, numel).
// What it allocates (a key copied from bytes, a new Storage) is charged to m.
func (a *archive) persistentLoad(pid any, m *meter) (any, error) {
	t, ok := pid.(Tuple)
	if !ok || len(t) != 5 {
		return nil, errf(ErrBadPickle, "persistent id is a %s, not a 5-tuple", typeName(pid))
	}
	tag := t[0]
	if b, ok := tag.([]byte); ok {
		tag = string(b)
	}
	if tag != "storage" {
		return nil, errf(ErrUnsupported, "persistent id of kind %v", typeName(t[0]))
	}
	g, ok := t[1].(*global)
	if !ok || g.kind != gStorageType {
		return nil, errf(ErrBadStorage, "storage type is a %s", typeName(t[1]))
	}
	var key string
	switch k := t[2].(type) {
	case string:
		key = k
	case []byte:
		if err := m.charge(int64(len(k))+costString, "a storage key"); err != nil {
			return nil, err
		}
		key = string(k)
	case int64:
		if err := m.charge(costString+8, "a storage key"); err != nil {
			return nil, err
		}
		key = strconv.FormatInt(k, 10)
	default:
		return nil, errf(ErrBadStorage, "storage key is a %s", typeName(t[2]))
	}
	loc, ok := t[3].(string)
	if !ok {
		return nil, errf(ErrBadStorage, "storage location is a %s", typeName(t[3]))
	}
	numel, ok := t[4].(int64)
	if !ok {
		// not %v: a list or tuple would be printed whole, shared strings and all
		return nil, errf(ErrBadStorage, "storage %q: element count is a %s", quoteName(key), typeName(t[4]))
	}
	if numel < 0 {
		return nil, errf(ErrBadStorage, "storage %q: bad element count %d", quoteName(key), numel)
	}
	if s, ok := a.storages[key]; ok {
		if s.DType != g.dtype.name || int64(s.Numel) != numel {
			return nil, errf(ErrBadStorage, "storage %q referenced as %d %s and as %d %s",
				quoteName(key), s.Numel, s.DType, numel, g.dtype.name)
		}
		return s, nil
	}
	if err := m.charge(costStorage+2*int64(len(key)+len(a.prefix)), "a storage"); err != nil {
		return nil, err
	}
	e := a.entries[a.prefix+"data/"+key]
	if e == nil {
		return nil, errf(ErrBadStorage, "storage %q has no entry %sdata/%s", quoteName(key), a.prefix, quoteName(key))
	}
	isz := int64(g.dtype.itemsize)
	if numel > (1<<62)/isz || numel*isz != e.usize {
		return nil, errf(ErrBadStorage, "storage %q claims %d %s elements (%d bytes each) but its entry holds %d bytes",
			quoteName(key), numel, g.dtype.name, isz, e.usize)
	}
	s := &Storage{Key: key, DType: g.dtype.name, Numel: int(numel), Location: loc,
		itemsize: g.dtype.itemsize, a: a, e: e}
	a.storages[key] = s
	return s, nil
}
