package torchpt

import "github.com/diffuse-web/diffuse/core/limits"

// DefaultMaxObjectBytes caps the default Options.MaxObjectBytes. The object
// graph of a real checkpoint is small beside its tensor data: a few hundred
// bytes per tensor (its rebuild call, size and stride tuples, name and memo
// entries), so even 100,000 tensors stay far below it.
const DefaultMaxObjectBytes = 256 << 20

// maxTupleKeyBytes bounds the encoding of one tuple dict key (and so the
// walk over it): real checkpoints key dicts by short strings and ints.
const maxTupleKeyBytes = 64 << 10

// Approximate heap bytes of what the unpickler builds, used to charge
// Options.MaxObjectBytes before each allocation. They round up what the Go
// runtime allocates on 64-bit platforms, growth of maps included.
const (
	costBox     = 8   // an int64 or float64 boxed in an interface
	costString  = 16  // a string header boxed in an interface (beside its bytes)
	costSlice   = 24  // a slice header boxed in an interface ([]byte, Tuple, []any)
	costSlot    = 16  // one interface slot: a stack, memo, list, tuple or dict entry
	costList    = 32  // an empty list
	costDict    = 96  // an empty dict (its index is made on the first entry)
	costTable   = 400 // a dict's index when made, room for 8 entries
	costIndex   = 192 // one entry in a dict's index or attributes, growth included
	costMemo    = 112 // one memo entry, growth included
	costGlobal  = 64  // a resolved global
	costTensor  = 192 // a Tensor, beside its shape and stride
	costStorage = 256 // a Storage, beside its key
	costSeen    = 96  // one entry in the finalizer's maps, growth included
)

// meter counts the bytes built while unpickling against
// Options.MaxObjectBytes. A nil meter counts nothing.
type meter struct {
	used, limit int64
}

// charge adds n bytes, about to be allocated (or hashed) for what, or
// refuses, counting nothing, when the total would pass the limit.
func (m *meter) charge(n int64, what string) error {
	if m == nil {
		return nil
	}
	total := limits.Add(m.used, max(n, 0))
	if total > m.limit {
		return errf(ErrTooLarge, "%s (%s) would take the objects built from the pickle past the %s limit (MaxObjectBytes)",
			what, limits.Bytes(n), limits.Bytes(m.limit))
	}
	m.used = total
	return nil
}

// grow returns s with room for extra more items, charging a reallocation
// (capacity doubled, as append does) to m.
func grow(s []any, extra int, m *meter, what string) ([]any, error) {
	need := len(s) + extra
	if need <= cap(s) {
		return s, nil
	}
	n := max(need, 2*cap(s), 4)
	if err := m.charge(limits.Mul(int64(n), costSlot), what); err != nil {
		return nil, err
	}
	out := make([]any, len(s), n)
	copy(out, s)
	return out, nil
}
