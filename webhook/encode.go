package webhook

import (
	"sort"
	"strconv"
	"unicode/utf8"
)

// appendResponse renders the AdmissionReview answer, byte for byte what
// encoding/json makes of reviewResponse (FuzzAppendResponse holds it to
// that), without reflection: the response is written on every request.
func appendResponse(dst []byte, r *response) []byte {
	dst = append(dst, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":`...)
	dst = appendJSONString(dst, r.UID)
	dst = append(dst, `,"allowed":`...)
	dst = strconv.AppendBool(dst, r.Allowed)
	if st := r.Status; st != nil {
		dst = append(dst, `,"status":{"code":`...)
		dst = strconv.AppendInt(dst, int64(st.Code), 10)
		dst = append(dst, `,"message":`...)
		dst = appendJSONString(dst, st.Message)
		if st.Reason != "" {
			dst = append(dst, `,"reason":`...)
			dst = appendJSONString(dst, st.Reason)
		}
		dst = append(dst, '}')
	}
	if len(r.Warnings) > 0 {
		dst = append(dst, `,"warnings":[`...)
		for i, w := range r.Warnings {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, w)
		}
		dst = append(dst, ']')
	}
	if len(r.AuditAnnotations) > 0 {
		keys := make([]string, 0, len(r.AuditAnnotations))
		for k := range r.AuditAnnotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, `,"auditAnnotations":{`...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, r.AuditAnnotations[k])
		}
		dst = append(dst, '}')
	}
	return append(dst, "}}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does by default: <, > and &
// escaped for HTML, U+2028/U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
