package torchpt

import "fmt"

// ErrKind classifies why a checkpoint was refused. An ErrKind is itself an
// error, so errors.Is(err, torchpt.ErrForbiddenGlobal) works on any error
// this package returns.
type ErrKind int

const (
	// ErrNotZip: the bytes are not a ZIP archive (and not a recognised legacy file).
	ErrNotZip ErrKind = iota + 1
	// ErrTruncated: the archive or the pickle ends early or an entry lies past the end of the file.
	ErrTruncated
	// ErrLegacyFormat: a pre-1.6 torch.save file (bare pickle stream or tar), which is not supported.
	ErrLegacyFormat
	// ErrForbiddenGlobal: the pickle names a global that is not on the allowlist,
	// or calls an allowlisted global that is not callable.
	ErrForbiddenGlobal
	// ErrBadPickle: malformed pickle (bad opcode, stack/memo underflow, wrong argument types, cycles...).
	ErrBadPickle
	// ErrBadStorage: a storage reference that does not match the archive (missing entry,
	// length not numel*itemsize, checksum mismatch, conflicting types for one key).
	ErrBadStorage
	// ErrBadTensor: a tensor whose size/stride/offset is invalid or reaches outside its storage.
	ErrBadTensor
	// ErrTooLarge: a configured limit (Options) was exceeded.
	ErrTooLarge
	// ErrUnsupported: valid input using a feature this reader does not handle
	// (dtype conversion, pickle opcode, compression method, integer width...).
	ErrUnsupported
	// ErrIO: reading the file from disk failed (LoadFile).
	ErrIO
)

var kindNames = map[ErrKind]string{
	ErrNotZip:          "not a zip archive",
	ErrTruncated:       "truncated",
	ErrLegacyFormat:    "legacy format",
	ErrForbiddenGlobal: "forbidden global",
	ErrBadPickle:       "bad pickle",
	ErrBadStorage:      "bad storage",
	ErrBadTensor:       "bad tensor",
	ErrTooLarge:        "too large",
	ErrUnsupported:     "unsupported",
	ErrIO:              "i/o error",
}

func (k ErrKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("ErrKind(%d)", int(k))
}

// Error makes an ErrKind usable as an errors.Is target.
func (k ErrKind) Error() string { return "torchpt: " + k.String() }

// Error is the only error type this package returns.
type Error struct {
	Kind   ErrKind
	Detail string
	Err    error // underlying cause, if any
}

func (e *Error) Error() string {
	s := "torchpt: " + e.Kind.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is this error's kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(ErrKind)
	return ok && k == e.Kind
}

func errf(kind ErrKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

func wrapErr(kind ErrKind, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...), Err: err}
}
