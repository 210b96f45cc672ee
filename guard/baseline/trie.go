package baseline

import (
	"sort"
	"strings"
)

// Tokens that stand for a generalized path component or piece of one.
const (
	tokNum  = "{n}"    // a run of digits: pids, counters, numeric suffixes
	tokHex  = "{hex}"  // a hex hash of at least 8 characters
	tokUUID = "{uuid}" // 8-4-4-4-12 hex
	tokDate = "{date}" // YYYY-MM-DD
	tokID   = "{id}"   // a random-looking alphanumeric name (mkstemp suffixes)
	tokAny  = "*"      // any one component (a collapsed fan-out)
	tokAll  = "**"     // everything below (a seeded writable directory)
)

// generalizeComponent returns the generalized form of one path component,
// collapsing the per-instance parts (pids, hashes, uuids, dates, numeric and
// random suffixes) so that /proc/4711/status and /proc/12/status, or
// app.3f9a1c2e.js and app.77bd10aa.js, learn as one pattern.
//
// # Notes
//
// Components without a digit are returned unchanged and without allocating:
// that is the common case (/etc/nginx/nginx.conf) and the hot path.
func generalizeComponent(c string) string {
	if !hasDigit(c) {
		return c
	}
	return string(appendGeneralized(make([]byte, 0, len(c)+8), c))
}

// appendGeneralized appends c's generalized form to dst; Match uses it
// with a stack buffer so that looking up a generalized name does not
// allocate.
func appendGeneralized(dst []byte, c string) []byte {
	for i := 0; i < len(c); {
		if n := uuidAt(c, i); n > 0 {
			dst = append(dst, tokUUID...)
			i += n
			continue
		}
		if n := dateAt(c, i); n > 0 {
			dst = append(dst, tokDate...)
			i += n
			continue
		}
		if isSep(c[i]) {
			dst = append(dst, c[i])
			i++
			continue
		}
		j := i
		for j < len(c) && !isSep(c[j]) {
			j++
		}
		dst = append(dst, generalizePiece(c[i:j])...)
		i = j
	}
	return dst
}

func isSep(ch byte) bool {
	return ch == '-' || ch == '_' || ch == '.' || ch == '@' || ch == ':' || ch == '+'
}

// generalizePiece generalizes a separator-free piece of a component.
func generalizePiece(p string) string {
	digits, hex, alpha := 0, 0, 0
	for i := 0; i < len(p); i++ {
		switch ch := p[i]; {
		case ch >= '0' && ch <= '9':
			digits++
		case ch >= 'a' && ch <= 'f', ch >= 'A' && ch <= 'F':
			hex++
			alpha++
		case ch >= 'g' && ch <= 'z', ch >= 'G' && ch <= 'Z':
			alpha++
		}
	}
	switch {
	case digits == 0:
		return p
	case digits == len(p):
		return tokNum
	case digits+hex == len(p) && len(p) >= 8:
		return tokHex
	}
	// Letters followed by a numeric suffix: worker3 -> worker{n}.
	end := len(p)
	for end > 0 && p[end-1] >= '0' && p[end-1] <= '9' {
		end--
	}
	if end < len(p) && !hasDigit(p[:end]) {
		return p[:end] + tokNum
	}
	if digits+alpha == len(p) && len(p) >= 8 && digits >= 2 {
		return tokID // digits scattered among letters: a random name
	}
	return p
}

func isHex(ch byte) bool {
	return ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F'
}

// uuidAt returns 36 when c[i:] starts with a uuid, else 0.
func uuidAt(c string, i int) int {
	if len(c)-i < 36 {
		return 0
	}
	for k := 0; k < 36; k++ {
		ch := c[i+k]
		if k == 8 || k == 13 || k == 18 || k == 23 {
			if ch != '-' {
				return 0
			}
		} else if !isHex(ch) {
			return 0
		}
	}
	return 36
}

// dateAt returns 10 when c[i:] starts with YYYY-MM-DD, else 0.
func dateAt(c string, i int) int {
	if len(c)-i < 10 {
		return 0
	}
	for k := 0; k < 10; k++ {
		ch := c[i+k]
		if k == 4 || k == 7 {
			if ch != '-' {
				return 0
			}
		} else if ch < '0' || ch > '9' {
			return 0
		}
	}
	return 10
}

// GeneralizePath returns the pattern a path learns as, component by
// component (see generalizeComponent).
func GeneralizePath(path string) string {
	var b strings.Builder
	forEachComponent(path, func(c string) bool {
		b.WriteByte('/')
		b.WriteString(generalizeComponent(c))
		return true
	})
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// forEachComponent calls fn for each non-empty component of path, without
// allocating, until fn returns false.
func forEachComponent(path string, fn func(string) bool) {
	for i := 0; i < len(path); {
		for i < len(path) && path[i] == '/' {
			i++
		}
		j := i
		for j < len(path) && path[j] != '/' {
			j++
		}
		if j > i && !fn(path[i:j]) {
			return
		}
		i = j
	}
}

// pathTrie is a set of generalized path patterns. Each node holds either
// named children or, once more than maxFanout distinct names appeared under
// it, a single wildcard child that stands for any name: that is how
// per-instance directories (session ids, cache shards) stop growing the
// profile.
type pathTrie struct {
	root      tnode
	maxFanout int
}

type tnode struct {
	kids map[string]*tnode
	wild *tnode // any one component; set only once kids is nil
	end  bool   // a learned path ends here
	all  bool   // everything below matches (seeded writable directory)
}

func newPathTrie(maxFanout int) *pathTrie { return &pathTrie{maxFanout: maxFanout} }

// Match reports whether path is covered by a learned pattern.
func (t *pathTrie) Match(path string) bool {
	n := &t.root
	ok := true
	forEachComponent(path, func(c string) bool {
		if n.all {
			return false
		}
		if n.wild != nil {
			n = n.wild
			return true
		}
		next := n.kids[c]
		if next == nil && hasDigit(c) {
			var buf [128]byte
			next = n.kids[string(appendGeneralized(buf[:0], c))]
		}
		if next == nil {
			ok = false
			return false
		}
		n = next
		return true
	})
	return ok && (n.end || n.all)
}

// Insert adds path (a concrete path or a pattern using * and **). It
// reports whether the set grew, i.e. the path was not covered before.
func (t *pathTrie) Insert(path string) bool {
	if t.Match(path) {
		return false
	}
	n := &t.root
	forEachComponent(path, func(c string) bool {
		if n.all {
			return false
		}
		if c == tokAll {
			n.all = true
			n.kids, n.wild = nil, nil
			return false
		}
		if n.wild != nil {
			n = n.wild
			return true
		}
		if c == tokAny {
			n.collapse()
			n = n.wild
			return true
		}
		c = generalizeComponent(c)
		next := n.kids[c]
		if next == nil {
			if n.kids == nil {
				n.kids = make(map[string]*tnode, 1)
			}
			next = &tnode{}
			n.kids[c] = next
			if t.maxFanout > 0 && len(n.kids) > t.maxFanout {
				n.collapse()
				n = n.wild
				return true
			}
		}
		n = next
		return true
	})
	if !n.all {
		n.end = true
	}
	return true
}

// collapse replaces n's named children by one wildcard child holding their
// union.
func (n *tnode) collapse() {
	if n.wild != nil {
		return
	}
	w := &tnode{}
	for _, k := range n.kids {
		w.merge(k)
	}
	n.kids = nil
	n.wild = w
}

// merge folds src into n; src must not be used afterwards.
func (n *tnode) merge(src *tnode) {
	n.end = n.end || src.end
	if src.all || n.all {
		n.all = true
		n.kids, n.wild = nil, nil
		return
	}
	if src.wild != nil {
		n.collapse()
		n.wild.merge(src.wild)
	}
	for k, v := range src.kids {
		switch {
		case n.wild != nil:
			n.wild.merge(v)
		case n.kids[k] != nil:
			n.kids[k].merge(v)
		default:
			if n.kids == nil {
				n.kids = make(map[string]*tnode)
			}
			n.kids[k] = v
		}
	}
}

func (n *tnode) clone() *tnode {
	c := &tnode{end: n.end, all: n.all}
	if n.wild != nil {
		c.wild = n.wild.clone()
	}
	if n.kids != nil {
		c.kids = make(map[string]*tnode, len(n.kids))
		for k, v := range n.kids {
			c.kids[k] = v.clone()
		}
	}
	return c
}

func (t *pathTrie) clone() *pathTrie {
	return &pathTrie{root: *t.root.clone(), maxFanout: t.maxFanout}
}

// Patterns lists every learned pattern in sorted order.
func (t *pathTrie) Patterns() []string {
	var out []string
	var walk func(n *tnode, prefix string)
	walk = func(n *tnode, prefix string) {
		if n.all {
			out = append(out, prefix+"/"+tokAll)
			return
		}
		if n.end {
			p := prefix
			if p == "" {
				p = "/"
			}
			out = append(out, p)
		}
		if n.wild != nil {
			walk(n.wild, prefix+"/"+tokAny)
		}
		for k, v := range n.kids {
			walk(v, prefix+"/"+k)
		}
	}
	walk(&t.root, "")
	sort.Strings(out)
	return out
}

// Len returns the number of learned patterns.
func (t *pathTrie) Len() int {
	var count func(n *tnode) int
	count = func(n *tnode) int {
		c := 0
		if n.end || n.all {
			c++
		}
		if n.wild != nil {
			c += count(n.wild)
		}
		for _, v := range n.kids {
			c += count(v)
		}
		return c
	}
	return count(&t.root)
}

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			return true
		}
	}
	return false
}
