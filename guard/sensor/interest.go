package sensor

import (
	"errors"
	"fmt"
	"strings"

	bpfsensor "github.com/vigilsec/vigil/bpf/sensor"
)

// InterestMode says which opens under a prefix reach userspace.
type InterestMode uint32

// Interest modes; the values are the kernel's INTEREST_* flags.
const (
	// ReportAlways reports every open, read-only included.
	ReportAlways InterestMode = 1
	// ReportWrites reports opens that may write: O_WRONLY, O_RDWR,
	// O_CREAT or O_TRUNC.
	ReportWrites InterestMode = 2
)

// Interest is one entry of the in-kernel open prefilter.
//
// # Notes
//
// A Prefix ending in "/" matches everything below that directory; any other
// Prefix matches exactly that file. The longest matching prefix decides, so
// {"/etc/", ReportWrites} with {"/etc/shadow", ReportAlways} reports every
// read of /etc/shadow and only writes elsewhere under /etc. Opens matching
// no prefix are counted as filtered and never sent. Prefixes are at most
// 255 bytes; there are no wildcards (use the directory form instead).
type Interest struct {
	Prefix string
	Mode   InterestMode
}

// ErrBadInterest is returned for an interest entry the kernel cannot hold.
var ErrBadInterest = errors.New("bad interest entry")

const maxInterestPath = len(bpfsensor.SensorInterestKey{}.Path)

// DefaultInterest is the prefilter the guard starts with: secrets are always
// reported, writes are reported under system directories.
func DefaultInterest() []Interest {
	always := []string{
		"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d/",
		"/etc/ssh/", "/root/.ssh/", "/var/run/secrets/", "/run/secrets/",
		"/etc/kubernetes/", "/var/lib/kubelet/pki/", "/proc/kcore", "/dev/mem",
		// Cloud and cluster credentials of root, read by the standard
		// pack's "Read cloud credentials".
		"/root/.aws/", "/root/.config/gcloud/", "/root/.azure/", "/root/.docker/config.json", "/root/.kube/config",
	}
	writes := []string{
		"/etc/", "/bin/", "/sbin/", "/usr/", "/lib/", "/lib64/", "/boot/",
		"/root/", "/var/spool/cron/", "/var/lib/dpkg/",
		// Log truncation ("Clear log activities") and cgroup v1
		// release_agent writes (container escapes).
		"/var/log/", "/sys/fs/cgroup/",
	}
	out := make([]Interest, 0, len(always)+len(writes))
	for _, p := range always {
		out = append(out, Interest{Prefix: p, Mode: ReportAlways})
	}
	for _, p := range writes {
		out = append(out, Interest{Prefix: p, Mode: ReportWrites})
	}
	return out
}

// interestKey encodes an entry as the trie's key: the prefix bytes, plus
// the terminating NUL for an exact file so that "/etc/shadow" does not also
// match "/etc/shadowx".
func interestKey(in Interest) (bpfsensor.SensorInterestKey, error) {
	var k bpfsensor.SensorInterestKey
	if !strings.HasPrefix(in.Prefix, "/") {
		return k, fmt.Errorf("%w: %q is not absolute", ErrBadInterest, in.Prefix)
	}
	if strings.IndexByte(in.Prefix, 0) >= 0 {
		return k, fmt.Errorf("%w: %q contains NUL", ErrBadInterest, in.Prefix)
	}
	if in.Mode == 0 || in.Mode&^(ReportAlways|ReportWrites) != 0 {
		return k, fmt.Errorf("%w: %q has mode %d", ErrBadInterest, in.Prefix, in.Mode)
	}
	b := []byte(in.Prefix)
	if !strings.HasSuffix(in.Prefix, "/") {
		b = append(b, 0)
	}
	if len(b) > maxInterestPath {
		return k, fmt.Errorf("%w: %q is longer than %d bytes", ErrBadInterest, in.Prefix, maxInterestPath-1)
	}
	copy(k.Path[:], b)
	k.Prefixlen = uint32(len(b) * 8)
	return k, nil
}
