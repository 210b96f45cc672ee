package baseline

import (
	"errors"
	"fmt"
	"strings"
)

// Category is a kind of learned behavior. Values are stored on disk and
// never change meaning.
type Category uint8

// Behavior categories.
const (
	CatExec    Category = 1 // an executable path ran
	CatEdge    Category = 2 // parent executable -> child executable
	CatRead    Category = 3 // a file (pattern) was opened for reading
	CatWrite   Category = 4 // a file (pattern) was written, created, removed or renamed
	CatConnect Category = 5 // an outbound peer (address:port)
	CatListen  Category = 6 // a listening port (proto/port)
	CatPriv    Category = 7 // a privilege operation (setuid, capset, mount, ...)
	CatRate    Category = 8 // a per-minute rate above its learned distribution
	CatCombo   Category = 9 // several deviations together (see score.go)
	// CatExecName is a known executable run under a name: "wget@/bin/busybox"
	// (see ExecName). Multi-call binaries pick their behaviour from the
	// name, so a new name of a known file is a new program.
	CatExecName Category = 10
)

var catNames = [...]string{"", "exec", "edge", "read", "write", "connect", "listen", "priv", "rate", "combo", "exec_name"}

func (c Category) String() string {
	if int(c) < len(catNames) && c != 0 {
		return catNames[c]
	}
	return fmt.Sprintf("Category(%d)", c)
}

// Behavior is one learnable fact about a workload, e.g. exec:/usr/bin/curl
// or connect:10.0.0.7:5432. Value is already generalized where the
// category generalizes (file patterns).
type Behavior struct {
	Cat   Category
	Value string
}

func (b Behavior) String() string { return b.Cat.String() + ":" + b.Value }

// ErrBadBehavior is returned for a behavior string that does not parse.
var ErrBadBehavior = errors.New("bad behavior")

// ParseBehavior parses the "category:value" form printed by String and
// shown by `vigil baseline show`.
func ParseBehavior(s string) (Behavior, error) {
	name, val, ok := strings.Cut(s, ":")
	if !ok || val == "" {
		return Behavior{}, fmt.Errorf("%w %q: want category:value", ErrBadBehavior, s)
	}
	for i, n := range catNames {
		if i != 0 && n == name {
			return Behavior{Cat: Category(i), Value: val}, nil
		}
	}
	return Behavior{}, fmt.Errorf("%w %q: unknown category %q", ErrBadBehavior, s, name)
}

// ExecName returns the exec_name behavior value of executable exe run
// under name: "name@exe".
func ExecName(exe, name string) string { return name + "@" + exe }

// splitExecName parses an exec_name value. A name has no '/' and exe is
// absolute, so the first "@/" is the separator.
func splitExecName(v string) (exe, name string, err error) {
	i := strings.Index(v, "@/")
	if i <= 0 {
		return "", "", fmt.Errorf("%w: exec_name %q: want name@/absolute/path", ErrBadBehavior, v)
	}
	return v[i+1:], v[:i], nil
}
