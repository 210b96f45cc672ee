package guard

import (
	"path"
	"path/filepath"
	"strings"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/enforce"
	"github.com/vigilsec/vigil/guard/event"
)

// Profile locks: with baseline.lock on, a profile that becomes ready is
// locked (Detector.Lock), and every running container of it gets its exec
// allow-list in the kernel (Enforcer.Lock) through the policy worker. The
// ticker keeps kernel and profiles in step: a learned or accepted exec
// changes the list and it is pushed again; a container whose profile is no
// longer locked is unlocked. A new revision is a new profile that learns
// first, so its containers start unlocked and are locked once it is ready.
//
// A profile locked offline (`vigil baseline lock KEY`, while the guard is
// stopped) is loaded locked from the store and pushed the same way, with or
// without baseline.lock.

// lockState is the guard's side of profile locks. seen belongs to the
// sensor reader; pushed (cgroup -> allow-list sent) is shared by the ticker
// and the policy worker, which forgets a push that failed so the next tick
// retries it, under Guard.lockMu like Guard.lockTargets.
type lockState struct {
	seen   map[uint64]enforce.Workload
	pushed map[uint64]string
}

// noteLockTarget runs on the sensor reader goroutine: it remembers which
// enforcement workload and cgroup directory each container cgroup is, so
// the ticker can lock it. Kubernetes context can arrive after a container's
// first events, so a changed name is recorded again.
func (g *Guard) noteLockTarget(e *event.Event) {
	if g.enforcer == nil || g.detector == nil || e.Container.ID == "" || e.Proc.CgroupID == 0 {
		return
	}
	w := workloadOf(e)
	if old, ok := g.locks.seen[e.Proc.CgroupID]; ok && old.Namespace == w.Namespace && old.Name == w.Name {
		return
	}
	rec := g.containers.Lookup(e.Proc.CgroupID, e.Proc.PID)
	if rec == nil {
		return
	}
	w.CgroupPath = filepath.Join(g.containers.Cgroup2Root(), rec.Path)
	g.locks.seen[e.Proc.CgroupID] = w
	g.lockMu.Lock()
	g.lockTargets[e.Proc.CgroupID] = w
	g.lockMu.Unlock()
}

// syncLocks runs on the ticker: lock ready profiles (baseline.lock), then
// push every locked container's allow-list when it changed, and unlock
// containers whose profile is no longer locked.
func (g *Guard) syncLocks() {
	if g.enforcer == nil || g.detector == nil {
		return
	}
	g.detMu.Lock()
	targets := g.detector.LockTargets()
	g.detMu.Unlock()
	g.lockMu.Lock()
	defer g.lockMu.Unlock()
	ws := make(map[uint64]enforce.Workload, len(targets))
	for _, t := range targets {
		if w, ok := g.lockTargets[t.Cgroup]; ok {
			ws[t.Cgroup] = w
		}
	}

	locked := map[uint64]bool{}
	for _, t := range targets {
		w, ok := ws[t.Cgroup]
		if !ok {
			continue // no event with container context yet
		}
		if t.State == baseline.StateReady {
			mode := g.modes.Mode(w.Namespace, w.Name, enforce.DefaultLockRule)
			if !g.cfg.Baseline.Lock || (mode != alert.ModeEnforce && mode != alert.ModeAudit) {
				continue
			}
			g.detMu.Lock()
			err := g.detector.Lock(t.Key)
			g.detMu.Unlock()
			if err != nil {
				g.lockErrors.Add(1)
				g.log.Warn("lock profile", "profile", baseline.FormatKey(t.Key), "err", err)
				continue
			}
			g.log.Info("profile locked", "profile", baseline.FormatKey(t.Key), "execs", len(t.Execs), "mode", mode.String())
		}
		locked[t.Cgroup] = true
		execs, sig := lockable(t.Entries)
		if g.locks.pushed[t.Cgroup] == sig {
			continue
		}
		// Profiles hold resolved files with the names they ran under
		// (/bin/busybox as sh and cat): the lock allows exactly those
		// pairs, not every applet the image links to busybox. A file
		// whose names were never learned falls back to the image's
		// names for it (see enforce.ExecLock.Execs).
		l := &enforce.ExecLock{Execs: execs}
		select {
		case g.applyQ <- applyReq{w: w, lock: l, cgroup: t.Cgroup}:
			g.locks.pushed[t.Cgroup] = sig
		default:
			g.applyDropped.Add(1) // retried on the next tick
		}
	}
	for cg := range g.locks.pushed {
		if locked[cg] {
			continue
		}
		w, ok := g.lockTargets[cg]
		if !ok {
			delete(g.locks.pushed, cg)
			continue
		}
		select {
		case g.applyQ <- applyReq{w: w, unlock: true}:
			delete(g.locks.pushed, cg)
		default:
			g.applyDropped.Add(1)
		}
	}
}

// lockable keeps the profile entries an allow-list can hold (a sensor that
// could not resolve an executable records "/" or a relative name), and
// returns them with a signature that changes when any path or name does.
func lockable(entries []baseline.ExecEntry) ([]enforce.ExecAllow, string) {
	out := make([]enforce.ExecAllow, 0, len(entries))
	var sig strings.Builder
	for _, e := range entries {
		if b := path.Base(e.Path); !path.IsAbs(e.Path) || b == "/" || b == "." {
			continue
		}
		var names []string
		for _, n := range e.Names {
			if n != "" && n != "." && n != ".." && !strings.ContainsRune(n, '/') {
				names = append(names, n)
			}
		}
		out = append(out, enforce.ExecAllow{Path: e.Path, Names: names})
		sig.WriteString(e.Path)
		for _, n := range names {
			sig.WriteByte(0)
			sig.WriteString(n)
		}
		sig.WriteByte('\n')
	}
	return out, sig.String()
}

// LockStats counts exec locks the guard put in force in the kernel (one
// per container and allow-list change) and those that failed.
type LockStats struct {
	Pushed, Errors uint64
}

// LockStats returns the exec lock counters.
func (g *Guard) LockStats() LockStats {
	return LockStats{Pushed: g.lockPushes.Load(), Errors: g.lockErrors.Load()}
}
