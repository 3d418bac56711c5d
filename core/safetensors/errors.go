package safetensors

import "fmt"

// ErrKind classifies what is wrong with a file (or with what Write was asked
// to encode), so callers can react with errors.As without parsing messages.
type ErrKind int

// The error kinds. The reader applies the same checks as the reference Rust
// implementation, plus duplicate-key detection.
const (
	ErrTooShort           ErrKind = iota + 1 // input shorter than the 8-byte length prefix
	ErrHeaderTooLarge                        // header length above MaxHeaderSize
	ErrHeaderBounds                          // header extends past the end of the input
	ErrInvalidJSON                           // header is not a single JSON object
	ErrInvalidUTF8                           // header (or a name given to Write) is not valid UTF-8
	ErrDuplicateName                         // the same tensor name appears twice
	ErrBadEntry                              // tensor entry is not {"dtype","shape","data_offsets"} with the right types
	ErrUnknownDType                          // dtype string is not one of the known codes
	ErrBadShape                              // shape is not a list of non-negative integers (or does not match the data)
	ErrSizeOverflow                          // element count or byte size overflows
	ErrOffsetsMismatch                       // end-begin differs from the size implied by dtype and shape
	ErrOffsetsOutOfBounds                    // data_offsets reach past the end of the data section
	ErrNotContiguous                         // tensors leave a gap or overlap
	ErrTrailingData                          // bytes after the last tensor
	ErrBadMetadata                           // __metadata__ is not a string-to-string object
	ErrReservedName                          // a tensor named "__metadata__"
	ErrFileTooLarge                          // ReadFile: file too large to load whole
	ErrUnsupportedDType                      // known dtype that the requested conversion cannot handle
)

var kindNames = map[ErrKind]string{
	ErrTooShort:           "file too short",
	ErrHeaderTooLarge:     "header too large",
	ErrHeaderBounds:       "header length out of bounds",
	ErrInvalidJSON:        "invalid JSON header",
	ErrInvalidUTF8:        "invalid UTF-8",
	ErrDuplicateName:      "duplicate name",
	ErrBadEntry:           "malformed tensor entry",
	ErrUnknownDType:       "unknown dtype",
	ErrBadShape:           "bad shape",
	ErrSizeOverflow:       "size overflow",
	ErrOffsetsMismatch:    "data offsets do not match size",
	ErrOffsetsOutOfBounds: "data offsets out of bounds",
	ErrNotContiguous:      "tensor data not contiguous",
	ErrTrailingData:       "trailing data",
	ErrBadMetadata:        "bad __metadata__",
	ErrReservedName:       "reserved name",
	ErrFileTooLarge:       "file too large",
	ErrUnsupportedDType:   "unsupported dtype",
}

func (k ErrKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("ErrKind(%d)", int(k))
}

// Error describes why a file was rejected. Tensor is the entry at fault, or
// "" when the problem is not about one tensor.
type Error struct {
	Tensor string
	Kind   ErrKind
	Detail string
}

func (e *Error) Error() string {
	s := "safetensors: "
	if e.Tensor != "" {
		s += fmt.Sprintf("tensor %q: ", e.Tensor)
	}
	s += e.Kind.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func errf(tensor string, kind ErrKind, format string, args ...any) *Error {
	return &Error{Tensor: tensor, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}
