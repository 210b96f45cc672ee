package baseline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/vigilsec/vigil/guard/profile"
)

// On-disk profile encoding: a version byte, then fields in a fixed order
// using uvarints for counts and integers, length-prefixed strings, the path
// tries as a preorder walk, and a CRC-32 of everything before it. Sets are
// written sorted so equal profiles encode to equal bytes.
//
// # Notes
//
// bbolt guarantees a transaction is either fully on disk or absent, but it
// does not checksum values; the CRC catches a damaged file or a value
// written by something else, so Decode fails with ErrCorrupt instead of
// loading garbage into a detector.
//
// Version 2 appends ExecNames after Learned: a count of executables, then
// each executable (sorted) and its set of names. Version 1 records, written
// before names were learned, still decode, with no names tracked.
const (
	encVersion   = 2
	encVersionV1 = 1
)

// ErrCorrupt is returned when a stored profile fails to decode.
var ErrCorrupt = errors.New("corrupt profile record")

// maxTrieDepth bounds recursion when decoding untrusted bytes.
const maxTrieDepth = 256

type encoder struct{ b []byte }

func (e *encoder) uv(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) byte1(v byte)  { e.b = append(e.b, v) }
func (e *encoder) str(s string)  { e.uv(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) f64(v float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.uv(0)
		return
	}
	e.uv(uint64(t.UnixNano()))
}
func (e *encoder) addr(a netip.Addr) {
	s := a.AsSlice()
	e.byte1(byte(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) strs(m map[string]struct{}) {
	ks := setKeys(m)
	sort.Strings(ks)
	e.uv(uint64(len(ks)))
	for _, k := range ks {
		e.str(k)
	}
}
func (e *encoder) node(n *tnode) {
	var f byte
	if n.end {
		f |= 1
	}
	if n.all {
		f |= 2
	}
	if n.wild != nil {
		f |= 4
	}
	e.byte1(f)
	ks := make([]string, 0, len(n.kids))
	for k := range n.kids {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	e.uv(uint64(len(ks)))
	for _, k := range ks {
		e.str(k)
		e.node(n.kids[k])
	}
	if n.wild != nil {
		e.node(n.wild)
	}
}

// EncodeKey renders a profile key as a store key.
func EncodeKey(k profile.Key) []byte {
	var e encoder
	e.str(k.Namespace)
	e.str(k.Workload)
	e.str(k.Container)
	e.str(k.Revision)
	return e.b
}

// DecodeKey parses a store key.
func DecodeKey(b []byte) (profile.Key, error) {
	d := decoder{b: b}
	k := profile.Key{Namespace: d.str(), Workload: d.str(), Container: d.str(), Revision: d.str()}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return k, d.err
}

// Encode renders p in the compact on-disk form.
func (p *Profile) Encode() []byte {
	e := encoder{b: make([]byte, 0, 512)}
	e.byte1(encVersion)
	e.b = append(e.b, EncodeKey(p.Key)...)
	e.byte1(byte(p.State))
	e.str(p.Parent)
	for _, t := range []time.Time{p.Created, p.Since, p.LastNew, p.ReadyAt, p.AdmittedAt} {
		e.time(t)
	}
	if p.Seeded {
		e.byte1(1)
	} else {
		e.byte1(0)
	}
	e.strs(p.Execs)
	e.strs(p.Edges)
	e.node(&p.Reads.root)
	e.node(&p.Writes.root)
	peers := make([]netip.AddrPort, 0, len(p.Peers))
	for a := range p.Peers {
		peers = append(peers, a)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Compare(peers[j]) < 0 })
	e.uv(uint64(len(peers)))
	for _, a := range peers {
		e.addr(a.Addr())
		e.uv(uint64(a.Port()))
	}
	e.uv(uint64(len(p.Nets)))
	for _, n := range p.Nets {
		e.addr(n.Prefix.Addr())
		e.byte1(byte(n.Prefix.Bits()))
		e.uv(uint64(n.Port))
	}
	e.uv(uint64(len(p.Names)))
	for _, n := range p.Names {
		e.str(n.Name)
		e.uv(uint64(n.Port))
	}
	ls := make([]uint32, 0, len(p.Listen))
	for k := range p.Listen {
		ls = append(ls, k)
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i] < ls[j] })
	e.uv(uint64(len(ls)))
	for _, k := range ls {
		e.uv(uint64(k))
	}
	e.strs(p.Priv)
	for i := range p.Rates {
		r := &p.Rates[i]
		e.f64(r.Mean)
		e.f64(r.Var)
		e.uv(uint64(r.Max))
		e.uv(uint64(r.N))
	}
	for _, h := range p.Hours {
		e.uv(h)
	}
	e.uv(uint64(p.HoursSeen))
	e.uv(p.Events)
	e.uv(p.Learned)
	exes := make([]string, 0, len(p.ExecNames))
	for exe, ns := range p.ExecNames {
		if len(ns) > 0 {
			exes = append(exes, exe)
		}
	}
	sort.Strings(exes)
	e.uv(uint64(len(exes)))
	for _, exe := range exes {
		e.str(exe)
		e.strs(p.ExecNames[exe])
	}
	e.b = binary.LittleEndian.AppendUint32(e.b, crc32.ChecksumIEEE(e.b))
	return e.b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uv() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a collection length, refusing one that could not fit in the
// remaining bytes (each element takes at least min bytes).
func (d *decoder) count(min int) int {
	n := d.uv()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.fail("count exceeds record")
		return 0
	}
	return int(n)
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("short record")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("short record")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uv()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("string exceeds record")
		return ""
	}
	return string(d.bytes(int(n)))
}

func (d *decoder) f64() float64 {
	b := d.bytes(8)
	if b == nil {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b))
}

func (d *decoder) time() time.Time {
	v := d.uv()
	if v == 0 || v > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, int64(v)).UTC()
}

func (d *decoder) addr() netip.Addr {
	n := int(d.byte1())
	if d.err == nil && n != 4 && n != 16 {
		d.fail("bad address length")
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(d.bytes(n))
	return a
}

func (d *decoder) port() uint16 {
	v := d.uv()
	if v > math.MaxUint16 {
		d.fail("bad port")
	}
	return uint16(v)
}

func (d *decoder) strs() map[string]struct{} {
	n := d.count(1)
	m := make(map[string]struct{}, n)
	for i := 0; i < n && d.err == nil; i++ {
		m[d.str()] = struct{}{}
	}
	return m
}

func (d *decoder) node(n *tnode, depth int) {
	if depth > maxTrieDepth {
		d.fail("trie too deep")
		return
	}
	f := d.byte1()
	if f&^7 != 0 {
		d.fail("bad trie flags")
		return
	}
	n.end, n.all = f&1 != 0, f&2 != 0
	k := d.count(2)
	if k > 0 {
		if f&4 != 0 {
			d.fail("trie node has both names and wildcard")
			return
		}
		n.kids = make(map[string]*tnode, k)
	}
	for i := 0; i < k && d.err == nil; i++ {
		name := d.str()
		c := &tnode{}
		d.node(c, depth+1)
		n.kids[name] = c
	}
	if f&4 != 0 && d.err == nil {
		n.wild = &tnode{}
		d.node(n.wild, depth+1)
	}
}

// DecodeProfile parses a record written by Encode. Damaged or foreign bytes
// yield an error wrapping ErrCorrupt, never a panic.
func DecodeProfile(b []byte) (*Profile, error) {
	if len(b) < 5 {
		return nil, fmt.Errorf("%w: short record", ErrCorrupt)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	version := body[0]
	if version != encVersion && version != encVersionV1 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, version)
	}
	d := decoder{b: body[1:]}
	k := profile.Key{Namespace: d.str(), Workload: d.str(), Container: d.str(), Revision: d.str()}
	p := newProfile(k, time.Time{})
	p.State = State(d.byte1())
	if p.State > StateLocked {
		d.fail("bad state")
	}
	p.Parent = d.str()
	p.Created, p.Since, p.LastNew, p.ReadyAt, p.AdmittedAt = d.time(), d.time(), d.time(), d.time(), d.time()
	p.Seeded = d.byte1() == 1
	p.Execs = d.strs()
	p.Edges = d.strs()
	d.node(&p.Reads.root, 0)
	d.node(&p.Writes.root, 0)
	n := d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		a := d.addr()
		p.Peers[netip.AddrPortFrom(a, d.port())] = struct{}{}
	}
	n = d.count(4)
	for i := 0; i < n && d.err == nil; i++ {
		a := d.addr()
		bits := int(d.byte1())
		pfx, err := a.Prefix(bits)
		if err != nil && d.err == nil {
			d.fail("bad prefix")
		}
		p.Nets = append(p.Nets, netPeer{pfx, d.port()})
	}
	n = d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		p.Names = append(p.Names, namePeer{d.str(), d.port()})
	}
	n = d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		v := d.uv()
		if v > math.MaxUint32 {
			d.fail("bad listen key")
		}
		p.Listen[uint32(v)] = struct{}{}
	}
	p.Priv = d.strs()
	for i := range p.Rates {
		r := &p.Rates[i]
		r.Mean, r.Var = d.f64(), d.f64()
		mx, cnt := d.uv(), d.uv()
		if mx > math.MaxUint32 || cnt > math.MaxUint32 {
			d.fail("bad rate")
		}
		r.Max, r.N = uint32(mx), uint32(cnt)
	}
	for i := range p.Hours {
		p.Hours[i] = d.uv()
	}
	if seen := d.uv(); seen < 1<<24 {
		p.HoursSeen = uint32(seen)
	} else {
		d.fail("bad hours mask")
	}
	p.Events = d.uv()
	p.Learned = d.uv()
	if version >= 2 {
		n = d.count(2)
		for i := 0; i < n && d.err == nil; i++ {
			exe := d.str()
			ns := d.strs()
			if len(ns) == 0 && d.err == nil {
				d.fail("executable without names")
			}
			p.ExecNames[exe] = ns
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return p, nil
}
