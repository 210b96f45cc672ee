package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// StateRoot is a directory where a runc-compatible runtime keeps one
// state.json per container, Depth levels below Dir:
//
//	depth 1: <Dir>/<id>/state.json         (runc's default /run/runc)
//	depth 2: <Dir>/<namespace>/<id>/state.json (containerd and docker shims)
type StateRoot struct {
	Dir     string
	Runtime string
	Depth   int
}

// DefaultStateRoots are where Debian's runc, containerd's runc shim and
// dockerd keep container state.
func DefaultStateRoots() []StateRoot {
	return []StateRoot{
		{Dir: "/run/runc", Runtime: RuntimeRunc, Depth: 1},
		{Dir: "/run/containerd/runc", Runtime: RuntimeContainerd, Depth: 2},
		{Dir: "/run/docker/runtime-runc", Runtime: RuntimeDocker, Depth: 2},
	}
}

// runcState is the part of runc's libcontainer state.json we read.
type runcState struct {
	ID          string            `json:"id"`
	CgroupPaths map[string]string `json:"cgroup_paths"`
	Config      struct {
		Cgroups struct {
			Path string `json:"path"`
		} `json:"cgroups"`
	} `json:"config"`
}

// stateEntry is one container found in a state root.
type stateEntry struct {
	ID, Runtime, Namespace string
	// CgroupPath is the container's cgroup2 path relative to the cgroup2
	// mount ("/vigil-x"), or its v1 cgroupsPath when there is no cgroup2.
	CgroupPath string
}

// ErrBadState marks a state.json that cannot be decoded.
var ErrBadState = errors.New("malformed runc state")

// parseRuncState decodes a state.json and returns the container's cgroup2
// path relative to cgroup2Root.
func parseRuncState(b []byte, cgroup2Root string) (id, cgroupPath string, err error) {
	var st runcState
	if err := json.Unmarshal(b, &st); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if st.ID == "" {
		return "", "", fmt.Errorf("%w: no id", ErrBadState)
	}
	// The "" key is the unified hierarchy (cgroup2 or hybrid's unified
	// mount); runc records the absolute directory it created.
	if abs, ok := st.CgroupPaths[""]; ok && cgroup2Root != "" {
		root := strings.TrimSuffix(cgroup2Root, "/")
		if rel, ok := strings.CutPrefix(abs, root); ok && (rel == "" || rel[0] == '/') {
			if rel == "" {
				rel = "/"
			}
			return st.ID, rel, nil
		}
	}
	// cgroupfs-driver paths are absolute; systemd ones ("slice:prefix:name")
	// are not comparable and are left to the parser.
	if p := st.Config.Cgroups.Path; strings.HasPrefix(p, "/") {
		return st.ID, filepath.Clean(p), nil
	}
	return st.ID, "", nil
}

// scanStateRoots reads every state.json under roots. Unreadable or
// malformed files are counted in bad and skipped: a container being created
// or deleted mid-scan is normal.
func scanStateRoots(roots []StateRoot, cgroup2Root string) (entries []stateEntry, bad int) {
	for _, r := range roots {
		pattern := r.Dir
		for i := 0; i < r.Depth; i++ {
			pattern = filepath.Join(pattern, "*")
		}
		matches, err := filepath.Glob(filepath.Join(pattern, "state.json"))
		if err != nil {
			continue
		}
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					bad++
				}
				continue
			}
			id, cg, err := parseRuncState(b, cgroup2Root)
			if err != nil {
				bad++
				continue
			}
			e := stateEntry{ID: id, Runtime: r.Runtime, CgroupPath: cg}
			if r.Depth == 2 {
				e.Namespace = filepath.Base(filepath.Dir(filepath.Dir(m)))
				if r.Runtime != RuntimeContainerd {
					e.Namespace = ""
				}
			}
			entries = append(entries, e)
		}
	}
	return entries, bad
}

// ociMount is one mount in a libcontainer state.json's config.
type ociMount struct {
	Device      string `json:"device"`
	Destination string `json:"destination"`
	Flags       int    `json:"flags"`
}

// msRdonly and msBind are the mount(2) flags libcontainer records.
const (
	msRdonly = 0x1
	msBind   = 0x1000
)

// WritableMounts returns the writable volumes of container id, from its
// state.json under roots: the destinations of its read-write bind and tmpfs
// mounts. It leaves out what the runtime mounts into every container (/dev,
// /proc, /sys, including /dev/shm, a classic place to drop a payload) and
// files under /etc that runtimes bind (hosts, resolv.conf, hostname). It is
// outside Kubernetes what a pod's writable volumeMounts are inside: where
// the workload is expected to write.
func WritableMounts(roots []StateRoot, id string) ([]string, error) {
	if id == "" || strings.ContainsAny(id, "/*?[") {
		return nil, fmt.Errorf("container id %q: %w", id, ErrBadState)
	}
	for _, r := range roots {
		pattern := r.Dir
		for i := 1; i < r.Depth; i++ {
			pattern = filepath.Join(pattern, "*")
		}
		matches, _ := filepath.Glob(filepath.Join(pattern, id, "state.json"))
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				continue
			}
			return writableMounts(b)
		}
	}
	return nil, fmt.Errorf("state of %s: %w", id, ErrNotFound)
}

func writableMounts(stateJSON []byte) ([]string, error) {
	var st struct {
		Config struct {
			Mounts []ociMount `json:"mounts"`
		} `json:"config"`
	}
	if err := json.Unmarshal(stateJSON, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	var out []string
	for _, m := range st.Config.Mounts {
		dst := filepath.Clean(m.Destination)
		if m.Flags&msRdonly != 0 || !filepath.IsAbs(dst) || dst == "/" {
			continue
		}
		if m.Device != "tmpfs" && (m.Device != "bind" && m.Flags&msBind == 0) {
			continue
		}
		under := func(dir string) bool { return dst == dir || strings.HasPrefix(dst, dir+"/") }
		if under("/dev") || under("/proc") || under("/sys") || under("/etc") {
			continue
		}
		out = append(out, dst)
	}
	return out, nil
}
