package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vigilsec/vigil/guard/event"
)

// Batch is a run of wire-encoded events evaluated with one guest call per
// module. Reuse a Batch (Reset) to evaluate without allocating.
type Batch struct {
	buf   []byte
	offs  []int // start of each event in buf, plus len(buf) at the end
	kinds []event.Kind
}

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.offs = b.offs[:0]
	b.kinds = b.kinds[:0]
}

// Len is the number of events in the batch.
func (b *Batch) Len() int { return len(b.kinds) }

// Bytes is the encoded batch, events back to back.
func (b *Batch) Bytes() []byte { return b.buf }

// Event returns the wire bytes of event i.
func (b *Batch) Event(i int) []byte {
	end := len(b.buf)
	if i+1 < len(b.offs) {
		end = b.offs[i+1]
	}
	return b.buf[b.offs[i]:end]
}

// Add encodes e and appends it.
func (b *Batch) Add(e *event.Event) {
	b.offs = append(b.offs, len(b.buf))
	b.buf = event.AppendEvent(b.buf, e)
	b.kinds = append(b.kinds, e.Kind)
}

// AddWire appends one or more already-encoded events, validating each.
func (b *Batch) AddWire(w []byte) error {
	for len(w) > 0 {
		kind, _, n, err := event.Decode(w)
		if err != nil {
			return fmt.Errorf("batch event %d: %w", b.Len(), err)
		}
		b.offs = append(b.offs, len(b.buf))
		b.buf = append(b.buf, w[:n]...)
		b.kinds = append(b.kinds, kind)
		w = w[n:]
	}
	return nil
}

// AddJSON encodes one event in the flat JSON fixture form and appends it.
func (b *Batch) AddJSON(j []byte) error {
	start := len(b.buf)
	buf, err := event.EncodeJSON(b.buf, j)
	if err != nil {
		return err
	}
	b.buf = buf
	b.offs = append(b.offs, start)
	b.kinds = append(b.kinds, event.Kind(binary.LittleEndian.Uint16(buf[start+4:])))
	return nil
}

// FieldValues returns a verdict's output fields read from the batch's own
// wire bytes, keyed by registry name: the form of Verdict.FieldValues for
// callers that evaluated pre-encoded events and hold no event.Event.
func (b *Batch) FieldValues(v *Verdict) (map[string]any, error) {
	if v.Event < 0 || v.Event >= b.Len() {
		return nil, fmt.Errorf("verdict names event %d of a batch of %d", v.Event, b.Len())
	}
	if len(v.Fields) == 0 {
		return nil, nil
	}
	_, recs, _, err := event.Decode(b.Event(v.Event))
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(v.Fields))
	for _, id := range v.Fields {
		f, ok := event.FieldByID(id)
		if !ok {
			continue
		}
		out[f.Name] = zeroValue(f.Type) // the wire omits zero values
		for _, r := range recs {
			if r.ID == id && r.Index == 0 {
				out[f.Name] = event.RecordValue(r)
				break
			}
		}
	}
	return out, nil
}

func zeroValue(t event.Type) any {
	switch t {
	case event.TypeU64:
		return uint64(0)
	case event.TypeI64:
		return int64(0)
	case event.TypeBool:
		return false
	case event.TypeStr:
		return ""
	case event.TypeStrList:
		return []string(nil)
	case event.TypeAddr:
		return netip.Addr{}
	}
	return nil
}
