package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// Wire format, version 1. This is what Wasm rules receive; wasm-rules/ABI.md
// documents it for guest authors. All integers are little endian.
//
//	event   := header record*
//	header  := u32 total_len   (header included)
//	           u16 kind
//	           u16 nrec
//	record  := u16 field_id
//	           u16 index        (element index for repeated objects, e.g. the
//	                             container number in admission events; else 0)
//	           u32 len
//	           len bytes of value, laid out per the field's Type
//
// Records appear in ascending (field_id, index) order and zero-valued fields
// are omitted, so a guest treats a missing field as zero.
const (
	WireVersion    = 1
	HeaderSize     = 8
	RecordHdrSize  = 8
	MaxEventSize   = 1 << 20 // a single encoded event never exceeds 1 MiB
	maxStrListItem = math.MaxUint16
)

// Errors returned by Decode.
var (
	ErrShort     = errors.New("wire: truncated")
	ErrBadLength = errors.New("wire: bad length")
)

// Record is one decoded field value.
type Record struct {
	ID    FieldID
	Index uint16
	Value []byte // aliases the input buffer
}

// AppendEvent appends e's wire encoding to dst and returns the extended
// buffer. It allocates nothing when dst has room.
func AppendEvent(dst []byte, e *Event) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	n := 0
	for i := range registry {
		f := &registry[i]
		var ok bool
		dst, ok = appendField(dst, f, e)
		if ok {
			n++
		}
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	binary.LittleEndian.PutUint16(dst[start+4:], uint16(e.Kind))
	binary.LittleEndian.PutUint16(dst[start+6:], uint16(n))
	return dst
}

func appendHdr(dst []byte, id FieldID, idx uint16, n int) []byte {
	return binary.LittleEndian.AppendUint32(
		binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(dst, uint16(id)), idx),
		uint32(n))
}

func appendField(dst []byte, f *Field, e *Event) ([]byte, bool) {
	switch f.Type {
	case TypeU64:
		v := f.u(e)
		if v == 0 {
			return dst, false
		}
		return AppendU64(dst, f.ID, 0, v), true
	case TypeI64:
		v := f.i(e)
		if v == 0 {
			return dst, false
		}
		return AppendU64(dst, f.ID, 0, uint64(v)), true
	case TypeBool:
		if !f.b(e) {
			return dst, false
		}
		return append(appendHdr(dst, f.ID, 0, 1), 1), true
	case TypeStr:
		v := f.s(e)
		if v == "" {
			return dst, false
		}
		return AppendStr(dst, f.ID, 0, v), true
	case TypeStrList:
		v := f.l(e)
		if len(v) == 0 {
			return dst, false
		}
		return AppendStrList(dst, f.ID, 0, v), true
	case TypeAddr:
		v := f.a(e)
		if !v.IsValid() {
			return dst, false
		}
		return AppendAddr(dst, f.ID, 0, v), true
	}
	return dst, false
}

// AppendU64 appends one u64 (or i64) record.
func AppendU64(dst []byte, id FieldID, idx uint16, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(appendHdr(dst, id, idx, 8), v)
}

// AppendStr appends one string record.
func AppendStr(dst []byte, id FieldID, idx uint16, v string) []byte {
	return append(appendHdr(dst, id, idx, len(v)), v...)
}

// AppendStrList appends one string-list record. Items longer than 65535 bytes
// are cut to that length.
func AppendStrList(dst []byte, id FieldID, idx uint16, v []string) []byte {
	n := 0
	for _, s := range v {
		n += 2 + min(len(s), maxStrListItem)
	}
	dst = appendHdr(dst, id, idx, n)
	for _, s := range v {
		if len(s) > maxStrListItem {
			s = s[:maxStrListItem]
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// AppendAddr appends one address record: 4 bytes for IPv4 (including
// IPv4-mapped IPv6), 16 for IPv6.
func AppendAddr(dst []byte, id FieldID, idx uint16, v netip.Addr) []byte {
	v = v.Unmap()
	if v.Is4() {
		b := v.As4()
		return append(appendHdr(dst, id, idx, 4), b[:]...)
	}
	b := v.As16()
	return append(appendHdr(dst, id, idx, 16), b[:]...)
}

// AppendBool appends one bool record.
func AppendBool(dst []byte, id FieldID, idx uint16, v bool) []byte {
	var b byte
	if v {
		b = 1
	}
	return append(appendHdr(dst, id, idx, 1), b)
}

// Decode parses one wire-format event from b. It returns the kind, the
// records (aliasing b) and the number of bytes consumed. It validates every
// length against the buffer and every value against its field type where the
// field is known; unknown field ids are kept, so newer hosts work with older
// decoders.
func Decode(b []byte) (Kind, []Record, int, error) {
	if len(b) < HeaderSize {
		return 0, nil, 0, ErrShort
	}
	total := int(binary.LittleEndian.Uint32(b))
	if total < HeaderSize || total > len(b) || total > MaxEventSize {
		return 0, nil, 0, fmt.Errorf("%w: event length %d of %d", ErrBadLength, total, len(b))
	}
	kind := Kind(binary.LittleEndian.Uint16(b[4:]))
	nrec := int(binary.LittleEndian.Uint16(b[6:]))
	if nrec > (total-HeaderSize)/RecordHdrSize {
		return 0, nil, 0, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrBadLength, nrec, total)
	}
	recs := make([]Record, 0, nrec)
	off := HeaderSize
	for i := 0; i < nrec; i++ {
		if total-off < RecordHdrSize {
			return 0, nil, 0, fmt.Errorf("record %d header: %w", i, ErrShort)
		}
		id := FieldID(binary.LittleEndian.Uint16(b[off:]))
		idx := binary.LittleEndian.Uint16(b[off+2:])
		n := int(binary.LittleEndian.Uint32(b[off+4:]))
		off += RecordHdrSize
		if n < 0 || n > total-off {
			return 0, nil, 0, fmt.Errorf("record %d (field %d) length %d: %w", i, id, n, ErrBadLength)
		}
		v := b[off : off+n : off+n]
		if f, ok := byID[id]; ok {
			if err := checkValue(f.Type, v); err != nil {
				return 0, nil, 0, fmt.Errorf("record %d (%s): %w", i, f.Name, err)
			}
		}
		recs = append(recs, Record{ID: id, Index: idx, Value: v})
		off += n
	}
	if off != total {
		return 0, nil, 0, fmt.Errorf("%w: %d trailing bytes", ErrBadLength, total-off)
	}
	return kind, recs, total, nil
}

func checkValue(t Type, v []byte) error {
	switch t {
	case TypeU64, TypeI64:
		if len(v) != 8 {
			return fmt.Errorf("%w: integer of %d bytes", ErrBadLength, len(v))
		}
	case TypeBool:
		if len(v) != 1 || v[0] > 1 {
			return fmt.Errorf("%w: bool", ErrBadLength)
		}
	case TypeAddr:
		if len(v) != 4 && len(v) != 16 {
			return fmt.Errorf("%w: address of %d bytes", ErrBadLength, len(v))
		}
	case TypeStrList:
		_, err := SplitStrList(v)
		return err
	}
	return nil
}

// SplitStrList decodes a string-list value.
func SplitStrList(v []byte) ([]string, error) {
	var out []string
	for len(v) > 0 {
		if len(v) < 2 {
			return nil, fmt.Errorf("string list item header: %w", ErrShort)
		}
		n := int(binary.LittleEndian.Uint16(v))
		if n > len(v)-2 {
			return nil, fmt.Errorf("string list item of %d bytes: %w", n, ErrBadLength)
		}
		out = append(out, string(v[2:2+n]))
		v = v[2+n:]
	}
	return out, nil
}

// RecordValue converts a record to a Go value per its field's type: uint64,
// int64, bool, string, []string or netip.Addr. Unknown fields return the raw
// bytes.
func RecordValue(r Record) any {
	f, ok := byID[r.ID]
	if !ok {
		return r.Value
	}
	switch f.Type {
	case TypeU64:
		return binary.LittleEndian.Uint64(r.Value)
	case TypeI64:
		return int64(binary.LittleEndian.Uint64(r.Value))
	case TypeBool:
		return r.Value[0] == 1
	case TypeStr:
		return string(r.Value)
	case TypeStrList:
		l, _ := SplitStrList(r.Value)
		return l
	case TypeAddr:
		a, _ := netip.AddrFromSlice(r.Value)
		return a
	}
	return r.Value
}
