package event

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON renders the event as one flat object keyed by registry field
// names ("proc.name", "net.dst_port", ...), plus "kind" and "time". Zero
// fields are omitted. Recorded fixtures use this form.
func (e *Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(nil), nil
}

// AppendJSON appends the JSON form of e to dst.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"kind":`...)
	dst = strconv.AppendQuote(dst, e.Kind.String())
	if !e.Time.IsZero() {
		dst = append(dst, `,"time":"`...)
		dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	for i := range registry {
		f := &registry[i]
		if f.ID == 1 || f.ID == 2 || f.IsZero(e) {
			continue
		}
		dst = append(dst, ',', '"')
		dst = append(dst, f.Name...)
		dst = append(dst, '"', ':')
		dst = appendJSONValue(dst, f.Value(e))
	}
	return append(dst, '}')
}

func appendJSONValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case bool:
		return strconv.AppendBool(dst, v)
	case string:
		return appendJSONString(dst, v)
	case []string:
		dst = append(dst, '[')
		for i, s := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, s)
		}
		return append(dst, ']')
	case netip.Addr:
		return appendJSONString(dst, v.String())
	}
	return append(dst, "null"...)
}

// appendJSONString quotes s as JSON. Invalid UTF-8 (paths and argv are
// arbitrary bytes) becomes U+FFFD so the output always parses.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// EncodeJSON converts the flat JSON form (as produced by MarshalJSON, used in
// rule fixtures) straight to the wire format, without building an Event.
// Unknown keys are an error, so a typo in a fixture does not pass silently.
func EncodeJSON(dst []byte, data []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return dst, fmt.Errorf("event json: %w", err)
	}
	var kind Kind
	if raw, ok := m["kind"]; ok {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return dst, fmt.Errorf("event json: kind: %w", err)
		}
		k, ok := ParseKind(name)
		if !ok {
			return dst, fmt.Errorf("event json: unknown kind %q", name)
		}
		kind = k
	} else {
		return dst, fmt.Errorf("event json: missing kind")
	}
	type kv struct {
		f   *Field
		raw json.RawMessage
	}
	var fields []kv
	for k, raw := range m {
		switch k {
		case "kind":
			continue
		case "time":
			var ts time.Time
			if err := json.Unmarshal(raw, &ts); err != nil {
				return dst, fmt.Errorf("event json: time: %w", err)
			}
			fields = append(fields, kv{byID[2], json.RawMessage(strconv.FormatInt(ts.UnixNano(), 10))})
			continue
		}
		f, ok := byName[k]
		if !ok {
			return dst, fmt.Errorf("event json: unknown field %q", k)
		}
		fields = append(fields, kv{f, raw})
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].f.ID < fields[j].f.ID })

	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = AppendU64(dst, 1, 0, uint64(kind))
	n := 1
	for _, x := range fields {
		var err error
		if dst, err = appendJSONField(dst, x.f, x.raw); err != nil {
			return dst[:start], fmt.Errorf("event json: %s: %w", x.f.Name, err)
		}
		n++
	}
	if len(dst)-start > MaxEventSize {
		return dst[:start], fmt.Errorf("event json: encoded event exceeds %d bytes", MaxEventSize)
	}
	putHeader(dst[start:], len(dst)-start, kind, n)
	return dst, nil
}

func putHeader(b []byte, total int, kind Kind, n int) {
	b[0], b[1], b[2], b[3] = byte(total), byte(total>>8), byte(total>>16), byte(total>>24)
	b[4], b[5] = byte(kind), byte(kind>>8)
	b[6], b[7] = byte(n), byte(n>>8)
}

func appendJSONField(dst []byte, f *Field, raw json.RawMessage) ([]byte, error) {
	switch f.Type {
	case TypeU64:
		var v uint64
		if err := json.Unmarshal(raw, &v); err != nil {
			return dst, err
		}
		return AppendU64(dst, f.ID, 0, v), nil
	case TypeI64:
		var v int64
		if err := json.Unmarshal(raw, &v); err != nil {
			return dst, err
		}
		return AppendU64(dst, f.ID, 0, uint64(v)), nil
	case TypeBool:
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return dst, err
		}
		return AppendBool(dst, f.ID, 0, v), nil
	case TypeStr:
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return dst, err
		}
		if len(v) > math.MaxInt32 {
			return dst, fmt.Errorf("string too long")
		}
		return AppendStr(dst, f.ID, 0, v), nil
	case TypeStrList:
		var v []string
		if err := json.Unmarshal(raw, &v); err != nil {
			return dst, err
		}
		return AppendStrList(dst, f.ID, 0, v), nil
	case TypeAddr:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return dst, err
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return dst, err
		}
		return AppendAddr(dst, f.ID, 0, a), nil
	}
	return dst, fmt.Errorf("unsupported type %v", f.Type)
}
