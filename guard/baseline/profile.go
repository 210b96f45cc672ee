package baseline

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/guard/profile"
)

// State is a profile's place in its life cycle.
type State uint8

// Profile states: learning → ready (→ locked, when the enforcer compiled its
// exec allow-list).
const (
	StateLearning State = 0
	StateReady    State = 1
	StateLocked   State = 2
)

func (s State) String() string {
	switch s {
	case StateLearning:
		return "learning"
	case StateReady:
		return "ready"
	case StateLocked:
		return "locked"
	}
	return fmt.Sprintf("State(%d)", s)
}

// MarshalText renders the state name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// trieFanout is how many distinct names a directory may hold before its
// children collapse into one wildcard.
const trieFanout = 24

// Profile is the learned normal of one workload revision's container. All
// replicas of the revision feed the same profile.
type Profile struct {
	Key   profile.Key
	State State
	// Parent is the revision this one inherited from, "" for a first one.
	Parent string
	// Created is when this revision's profile started; Since is when the
	// oldest ancestor started observing (hours-of-day needs a day of it).
	Created, Since time.Time
	// LastNew is when the last new behavior was learned (stabilization).
	LastNew time.Time
	ReadyAt time.Time
	// AdmittedAt is when the revision was admitted (seed or release
	// window); zero when unknown.
	AdmittedAt time.Time
	Seeded     bool

	Execs map[string]struct{} // absolute paths; bare names from seeds match a basename
	// ExecNames holds, per executable of Execs, the names it was run by
	// (the last component of the exec'd path: sh, wget for /bin/busybox).
	// Key "" holds the names the manifest runs programs by, which any
	// executable may carry. An executable without names was learned before
	// names were recorded (or from an event without one): its names are not
	// tracked.
	ExecNames map[string]map[string]struct{}
	Edges     map[string]struct{} // "parent>child" executable paths
	Reads     *pathTrie
	Writes    *pathTrie
	Peers     map[netip.AddrPort]struct{}
	Nets      []netPeer // CIDR peers (seeded or generalized), port 0 = any
	Names     []namePeer
	Listen    map[uint32]struct{} // proto<<16 | port
	Priv      map[string]struct{}
	// peerCount counts learned peers per /24 (/64) and port; derived, not
	// stored.
	peerCount map[netPeer]int

	Rates [numRates]Dist
	Hours [24]uint64 // events per hour of day, from normal minutes
	// HoursSeen has bit h set once a live container was watched during
	// hour h; the hour factor needs all 24.
	HoursSeen uint32
	Events    uint64
	// Learned counts behaviors added since Created (the revision's diff).
	Learned uint64
}

type netPeer struct {
	Prefix netip.Prefix
	Port   uint16
}

type namePeer struct {
	Name string
	Port uint16
}

func newProfile(k profile.Key, now time.Time) *Profile {
	return &Profile{
		Key: k, Created: now, Since: now, LastNew: now,
		Execs: map[string]struct{}{}, Edges: map[string]struct{}{},
		ExecNames: map[string]map[string]struct{}{},
		Reads:     newPathTrie(trieFanout), Writes: newPathTrie(trieFanout),
		Peers: map[netip.AddrPort]struct{}{}, Listen: map[uint32]struct{}{},
		Priv: map[string]struct{}{},
	}
}

// inherit returns a copy of p for revision k: the new revision starts from
// everything its predecessor learned and learns only the difference.
func (p *Profile) inherit(k profile.Key, now time.Time) *Profile {
	c := newProfile(k, now)
	c.Parent = p.Key.Revision
	c.Since = p.Since
	c.Seeded = p.Seeded
	for s := range p.Execs {
		c.Execs[s] = struct{}{}
	}
	for s := range p.Edges {
		c.Edges[s] = struct{}{}
	}
	for exe, ns := range p.ExecNames {
		for n := range ns {
			c.addExecName(exe, n)
		}
	}
	c.Reads, c.Writes = p.Reads.clone(), p.Writes.clone()
	for a := range p.Peers {
		c.Peers[a] = struct{}{}
	}
	c.Nets = append([]netPeer(nil), p.Nets...)
	c.Names = append([]namePeer(nil), p.Names...)
	for l := range p.Listen {
		c.Listen[l] = struct{}{}
	}
	for s := range p.Priv {
		c.Priv[s] = struct{}{}
	}
	c.Rates, c.Hours, c.HoursSeen, c.Events = p.Rates, p.Hours, p.HoursSeen, p.Events
	return c
}

// seed folds a manifest's expected behavior into p.
func (p *Profile) seed(exp *profile.Expected) {
	p.Seeded = true
	if !exp.AdmittedAt.IsZero() {
		p.AdmittedAt = exp.AdmittedAt
	}
	runs := append([]string(nil), exp.Executables...)
	for _, argv := range exp.Commands {
		if len(argv) > 0 {
			runs = append(runs, argv[0])
		}
	}
	for _, e := range runs {
		if e == "" {
			continue
		}
		p.Execs[e] = struct{}{}
		// The manifest runs it by this name, whichever file it turns out
		// to be; a path is also allowed as the name it says, and nothing
		// more, so a seeded /bin/sh in a busybox image is not every
		// applet.
		p.addExecName("", nameOf(e))
		if strings.HasPrefix(e, "/") {
			p.addExecName(e, nameOf(e))
		}
	}
	for _, lp := range exp.ListenPorts {
		p.Listen[listenKey(protoNumber(lp.Proto), lp.Port)] = struct{}{}
	}
	for _, eg := range exp.Egress {
		switch {
		case eg.CIDR != "":
			if pfx, err := netip.ParsePrefix(eg.CIDR); err == nil {
				p.Nets = append(p.Nets, netPeer{pfx.Masked(), eg.Port})
			}
		case eg.Host != "":
			if a, err := netip.ParseAddr(eg.Host); err == nil {
				p.Nets = append(p.Nets, netPeer{netip.PrefixFrom(a, a.BitLen()), eg.Port})
			} else {
				p.Names = append(p.Names, namePeer{strings.ToLower(eg.Host), eg.Port})
			}
		}
	}
	for _, w := range exp.WritablePaths {
		if w == "" {
			continue
		}
		p.Writes.Insert(strings.TrimSuffix(w, "/") + "/" + tokAll)
		p.Reads.Insert(strings.TrimSuffix(w, "/") + "/" + tokAll)
	}
	pr := &exp.Privilege
	if pr.Privileged {
		for _, op := range []string{"mount", "umount", "unshare", "setns", "capset", "setuid", "setgid"} {
			p.Priv[op] = struct{}{}
		}
	}
	if pr.AllowPrivilegeEscalation == nil || *pr.AllowPrivilegeEscalation {
		if !pr.RunAsNonRoot && (pr.RunAsUser == nil || *pr.RunAsUser == 0) {
			// A root container that may change ids: servers that drop to
			// an unprivileged user after binding (nginx, postgres) do this.
			p.Priv["setuid"] = struct{}{}
			p.Priv["setgid"] = struct{}{}
		}
	}
	if len(pr.CapsAdd) > 0 {
		p.Priv["capset"] = struct{}{}
	}
}

func listenKey(proto uint16, port uint16) uint32 { return uint32(proto)<<16 | uint32(port) }

func protoNumber(s string) uint16 {
	switch strings.ToUpper(s) {
	case "UDP":
		return 17
	case "SCTP":
		return 132
	}
	return 6
}

func protoName(n uint16) string {
	switch n {
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return "tcp"
}

// hasExec reports whether exe is a known executable. Seeds may name a
// program without its path (command: ["nginx"]), which matches any path
// with that basename.
func (p *Profile) hasExec(exe string) bool {
	if _, ok := p.Execs[exe]; ok {
		return true
	}
	_, ok := p.Execs[path.Base(exe)]
	return ok
}

// nameOf returns the name a path is executed by, its last component; ""
// for a path that names no file.
func nameOf(p string) string {
	if p == "" {
		return ""
	}
	b := path.Base(p)
	if b == "/" || b == "." || b == ".." {
		return ""
	}
	return b
}

// reexecName is the name of every program re-executing itself through
// /proc/self/exe. The exec lock allows it for every allowed file, so it is
// no new behavior either.
const reexecName = "exe"

func (p *Profile) addExecName(exe, name string) bool {
	if name == "" {
		return false
	}
	ns := p.ExecNames[exe]
	if ns == nil {
		ns = map[string]struct{}{}
		p.ExecNames[exe] = ns
	}
	if _, ok := ns[name]; ok {
		return false
	}
	ns[name] = struct{}{}
	return true
}

// hasExecName reports whether known executable exe was run under name
// before, or the manifest names a program so.
func (p *Profile) hasExecName(exe, name string) bool {
	if name == reexecName {
		return true
	}
	if _, ok := p.ExecNames[exe][name]; ok {
		return true
	}
	_, ok := p.ExecNames[""][name]
	return ok
}

// tracksNames reports whether exe's names are known (see ExecNames).
func (p *Profile) tracksNames(exe string) bool { return len(p.ExecNames[exe]) > 0 }

// hasPeer reports whether a connection to dst is expected. name is the DNS
// name the guard resolved dst from, "" if unknown.
func (p *Profile) hasPeer(dst netip.AddrPort, name string) bool {
	if _, ok := p.Peers[dst]; ok {
		return true
	}
	a := dst.Addr().Unmap()
	for _, n := range p.Nets {
		if (n.Port == 0 || n.Port == dst.Port()) && n.Prefix.Contains(a) {
			return true
		}
	}
	if name != "" {
		for _, n := range p.Names {
			if (n.Port == 0 || n.Port == dst.Port()) && n.Name == name {
				return true
			}
		}
	}
	return false
}

// Has reports whether b is inside the profile.
func (p *Profile) Has(b Behavior) bool {
	switch b.Cat {
	case CatExec:
		return p.hasExec(b.Value)
	case CatEdge:
		_, ok := p.Edges[b.Value]
		return ok
	case CatExecName:
		// Exact: a name the manifest gave any program is not yet a name
		// of this file in an allow-list.
		exe, name, err := splitExecName(b.Value)
		if err != nil {
			return false
		}
		_, ok := p.ExecNames[exe][name]
		return ok
	case CatRead:
		return p.Reads.Match(b.Value)
	case CatWrite:
		return p.Writes.Match(b.Value)
	case CatConnect:
		if ap, err := netip.ParseAddrPort(b.Value); err == nil {
			return p.hasPeer(ap, "")
		}
		if pfx, port, err := parseNetPeer(b.Value); err == nil {
			for _, n := range p.Nets {
				if n == (netPeer{pfx, port}) {
					return true
				}
			}
			return false
		}
		if np, err := parseNamePeer(b.Value); err == nil {
			for _, n := range p.Names {
				if n == np {
					return true
				}
			}
		}
		return false
	case CatListen:
		k, err := parseListen(b.Value)
		if err != nil {
			return false
		}
		_, ok := p.Listen[k]
		return ok
	case CatPriv:
		_, ok := p.Priv[b.Value]
		return ok
	}
	return false
}

// Add folds b into the profile; it reports whether the profile grew.
func (p *Profile) Add(b Behavior) (bool, error) {
	if p.Has(b) {
		return false, nil
	}
	switch b.Cat {
	case CatExec:
		p.Execs[b.Value] = struct{}{}
	case CatEdge:
		p.Edges[b.Value] = struct{}{}
	case CatExecName:
		exe, name, err := splitExecName(b.Value)
		if err != nil {
			return false, err
		}
		if !p.hasExec(exe) {
			return false, fmt.Errorf("%w: exec_name %q: %s is not a known executable", ErrBadBehavior, b.Value, exe)
		}
		p.addExecName(exe, name)
	case CatRead:
		p.Reads.Insert(b.Value)
	case CatWrite:
		p.Writes.Insert(b.Value)
	case CatConnect:
		if ap, err := netip.ParseAddrPort(b.Value); err == nil {
			p.addPeer(ap)
			break
		}
		if pfx, port, err := parseNetPeer(b.Value); err == nil {
			p.Nets = append(p.Nets, netPeer{pfx, port})
			break
		}
		np, err := parseNamePeer(b.Value)
		if err != nil {
			return false, fmt.Errorf("%w: connect %q: want addr:port, cidr:port or dns-name:port", ErrBadBehavior, b.Value)
		}
		p.Names = append(p.Names, np)
	case CatListen:
		k, err := parseListen(b.Value)
		if err != nil {
			return false, err
		}
		p.Listen[k] = struct{}{}
	case CatPriv:
		p.Priv[b.Value] = struct{}{}
	default:
		// Rate and combination findings are not behaviors a profile can
		// hold; accepting one only closes its deviation.
		return false, nil
	}
	p.Learned++
	return true, nil
}

// peerCollapse is how many learned peers of one /24 (or /64) and port turn
// into that subnet: replicas of a backend service scale and move.
const peerCollapse = 8

func (p *Profile) addPeer(ap netip.AddrPort) {
	bits := 24
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		bits = 64
	}
	pfx, err := ap.Addr().Unmap().Prefix(bits)
	if err != nil {
		p.Peers[ap] = struct{}{}
		return
	}
	if p.peerCount == nil {
		// Built once per loaded profile so learning a peer stays O(1).
		p.peerCount = map[netPeer]int{}
		for q := range p.Peers {
			if qp, err := subnetOf(q); err == nil {
				p.peerCount[qp]++
			}
		}
	}
	p.Peers[ap] = struct{}{}
	np := netPeer{pfx, ap.Port()}
	p.peerCount[np]++
	if p.peerCount[np] < peerCollapse {
		return
	}
	p.Nets = append(p.Nets, np)
	delete(p.peerCount, np)
	for q := range p.Peers {
		if q.Port() == ap.Port() && pfx.Contains(q.Addr().Unmap()) {
			delete(p.Peers, q)
		}
	}
}

func subnetOf(ap netip.AddrPort) (netPeer, error) {
	bits := 24
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		bits = 64
	}
	pfx, err := ap.Addr().Unmap().Prefix(bits)
	return netPeer{pfx, ap.Port()}, err
}

func parseNetPeer(s string) (netip.Prefix, uint16, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.Prefix{}, 0, fmt.Errorf("peer %q: want cidr:port", s)
	}
	pfx, err := netip.ParsePrefix(s[:i])
	if err != nil {
		return netip.Prefix{}, 0, fmt.Errorf("peer %q: %w", s, err)
	}
	port, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return netip.Prefix{}, 0, fmt.Errorf("peer %q: port: %w", s, err)
	}
	return pfx.Masked(), uint16(port), nil
}

// parseNamePeer parses "dns-name:port" (port 0 = any).
func parseNamePeer(s string) (namePeer, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return namePeer{}, fmt.Errorf("peer %q: want name:port", s)
	}
	name := strings.ToLower(s[:i])
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return namePeer{}, fmt.Errorf("peer %q: bad dns name", s)
		}
	}
	port, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return namePeer{}, fmt.Errorf("peer %q: port: %w", s, err)
	}
	return namePeer{name, uint16(port)}, nil
}

func formatListen(k uint32) string {
	return protoName(uint16(k>>16)) + "/" + strconv.Itoa(int(k&0xffff))
}

func parseListen(s string) (uint32, error) {
	proto, port, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("%w: listen %q: want proto/port", ErrBadBehavior, s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: listen %q: %v", ErrBadBehavior, s, err)
	}
	return listenKey(protoNumber(proto), uint16(n)), nil
}

// Behaviors lists everything the profile holds, sorted, in the form
// ParseBehavior reads back.
func (p *Profile) Behaviors() []Behavior {
	var out []Behavior
	add := func(c Category, vals []string) {
		sort.Strings(vals)
		for _, v := range vals {
			out = append(out, Behavior{c, v})
		}
	}
	add(CatExec, setKeys(p.Execs))
	add(CatEdge, setKeys(p.Edges))
	var names []string
	for exe, ns := range p.ExecNames {
		if exe == "" {
			continue // the manifest's names show as its execs
		}
		for n := range ns {
			names = append(names, ExecName(exe, n))
		}
	}
	add(CatExecName, names)
	add(CatRead, p.Reads.Patterns())
	add(CatWrite, p.Writes.Patterns())
	var peers []string
	for a := range p.Peers {
		peers = append(peers, a.String())
	}
	for _, n := range p.Nets {
		peers = append(peers, n.Prefix.String()+":"+strconv.Itoa(int(n.Port)))
	}
	for _, n := range p.Names {
		peers = append(peers, n.Name+":"+strconv.Itoa(int(n.Port)))
	}
	add(CatConnect, peers)
	var ls []string
	for k := range p.Listen {
		ls = append(ls, formatListen(k))
	}
	add(CatListen, ls)
	add(CatPriv, setKeys(p.Priv))
	return out
}

func setKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// HourActivity returns hour h's (0–23) share of the busiest hour's events,
// and whether there is enough history (every hour of the day watched) to
// judge.
func (p *Profile) HourActivity(h int) (float64, bool) {
	var total, peak uint64
	for _, c := range p.Hours {
		total += c
		peak = max(peak, c)
	}
	if total < 100 || p.HoursSeen != 1<<24-1 {
		return 0, false
	}
	return float64(p.Hours[h]) / float64(peak), true
}

// AllowedExecs lists the executable paths a ready or locked profile allows,
// sorted: the enforcer compiles them into its exec allow-list map.
//
// # Notes
//
// Bare names from a manifest (command: ["nginx"]) are left out: a kernel
// allow-list matches paths, and the path they ran from was recorded when
// they first ran.
func (p *Profile) AllowedExecs() []string {
	out := make([]string, 0, len(p.Execs))
	for e := range p.Execs {
		if strings.HasPrefix(e, "/") {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// ExecEntry is one executable of an exec allow-list and the names it may
// be executed by.
type ExecEntry struct {
	Path string
	// Names are the learned names, sorted; nil when the profile does not
	// track them for Path (see Profile.ExecNames).
	Names []string
}

// AllowedExecNames is AllowedExecs with each executable's learned names,
// what a precise exec lock allows: /bin/busybox under sh and cat, not under
// every applet name the image ships.
func (p *Profile) AllowedExecNames() []ExecEntry {
	execs := p.AllowedExecs()
	out := make([]ExecEntry, len(execs))
	for i, e := range execs {
		out[i].Path = e
		if ns := p.ExecNames[e]; len(ns) > 0 {
			out[i].Names = setKeys(ns)
			sort.Strings(out[i].Names)
		}
	}
	return out
}
