package baseline

import (
	"fmt"
	"strings"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
)

// FormatKey renders a key as "namespace/Kind/name:container@revision", the
// form `vigil baseline` prints and accepts.
func FormatKey(k profile.Key) string {
	return k.Namespace + "/" + k.Workload + ":" + k.Container + "@" + k.Revision
}

// ParseKey parses the form FormatKey prints.
func ParseKey(s string) (profile.Key, error) {
	rest, rev, ok := cutLast(s, '@')
	if !ok {
		return profile.Key{}, fmt.Errorf("profile key %q: want namespace/Kind/name:container@revision", s)
	}
	rest, ctr, ok := cutLast(rest, ':')
	if !ok {
		return profile.Key{}, fmt.Errorf("profile key %q: missing :container", s)
	}
	ns, wl, ok := strings.Cut(rest, "/")
	if !ok || wl == "" || ctr == "" {
		return profile.Key{}, fmt.Errorf("profile key %q: want namespace/Kind/name:container@revision", s)
	}
	return profile.Key{Namespace: ns, Workload: wl, Container: ctr, Revision: rev}, nil
}

func cutLast(s string, sep byte) (string, string, bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// keyOf returns the profile an event belongs to. Host events (no container)
// have none. A container outside Kubernetes is its own workload, its image
// digest (or image) its revision.
func keyOf(ev *event.Event) (profile.Key, bool) {
	if ev.Container.ID == "" {
		return profile.Key{}, false
	}
	rev := ev.K8s.Revision
	if rev == "" {
		rev = ev.Container.ImageDigest
	}
	if rev == "" {
		rev = ev.Container.Image
	}
	if ev.K8s.Workload != "" {
		return profile.Key{Namespace: ev.K8s.Namespace, Workload: ev.K8s.Workload, Container: ev.K8s.ContainerName, Revision: rev}, true
	}
	name := ev.Container.Name
	if name == "" {
		name = ev.Container.ID
	}
	return profile.Key{Workload: "Container/" + name, Container: name, Revision: rev}, true
}

// KeyOf returns the profile key an event belongs to; false for host events.
func KeyOf(ev *event.Event) (profile.Key, bool) { return keyOf(ev) }
