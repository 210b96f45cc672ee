package baseline

import "github.com/vigilsec/vigil/guard/profile"

// LockTarget is one running container whose profile is ready or locked:
// what the guard needs to lock it in the kernel.
type LockTarget struct {
	Key    profile.Key
	Cgroup uint64 // cgroup v2 id of the container
	State  State
	// Execs is the profile's exec allow-list (AllowedExecs).
	Execs []string
	// Entries are Execs with the names each was run by (AllowedExecNames).
	Entries []ExecEntry
}

// LockTargets lists the running containers whose profile is past learning,
// with their allow-lists. Containers not seen for an hour are gone from it.
func (d *Detector) LockTargets() []LockTarget {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []LockTarget
	lists := map[profile.Key][]ExecEntry{}
	for _, in := range d.insts {
		p := d.profs[in.key]
		if p == nil || p.State == StateLearning || in.cgroup == 0 {
			continue
		}
		l, ok := lists[in.key]
		if !ok {
			l = p.AllowedExecNames()
			lists[in.key] = l
		}
		execs := make([]string, len(l))
		for i, e := range l {
			execs[i] = e.Path
		}
		out = append(out, LockTarget{Key: in.key, Cgroup: in.cgroup, State: p.State, Execs: execs, Entries: l})
	}
	return out
}
