package guard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/guard/enforce"
	"github.com/vigilsec/vigil/guard/event"
)

// applyReq asks the policy worker to compile the fast-path policies that
// match one container into the kernel, or to put its profile's exec lock
// in force (lock) or lift it (unlock).
type applyReq struct {
	w      enforce.Workload
	rules  []enforce.Rule
	lock   *enforce.ExecLock
	unlock bool
	cgroup uint64 // the container's cgroup id (locks)
}

// compilePolicies turns config policies into the enforcer's data rules.
// The config was validated, so parse errors cannot happen here.
func compilePolicies(ps []config.Policy) []enforce.Rule {
	out := make([]enforce.Rule, 0, len(ps))
	for _, p := range ps {
		r := enforce.Rule{Name: p.Name, Action: alert.ActionBlock,
			ExecPaths: p.ExecPaths, ExecNames: p.ExecNames, OpenPaths: p.OpenPaths}
		if p.Action == "kill" {
			r.Action = alert.ActionKill
		}
		for _, n := range p.Connect {
			pfx, port, _ := config.ParseNet(n)
			r.Connect = append(r.Connect, enforce.NetMatch{Prefix: pfx, Port: port})
		}
		for _, n := range p.Bind {
			pfx, port, _ := config.ParseNet(n)
			r.Bind = append(r.Bind, enforce.NetMatch{Prefix: pfx, Port: port})
		}
		for _, d := range p.Deny {
			switch d {
			case "ptrace":
				r.Deny = append(r.Deny, event.KindPtrace)
			case "mount":
				r.Deny = append(r.Deny, event.KindMount)
			case "module_load":
				r.Deny = append(r.Deny, event.KindModuleLoad)
			case "setuid":
				r.Deny = append(r.Deny, event.KindSetuid)
			}
		}
		out = append(out, r)
	}
	return out
}

// matches reports whether a policy selects the container of e.
func matches(m config.PolicyMatch, e *event.Event) bool {
	if e.Container.ID == "" {
		return false
	}
	if m.Namespace != "" && m.Namespace != e.K8s.Namespace {
		return false
	}
	if m.Workload != "" && m.Workload != e.K8s.Workload {
		return false
	}
	if m.Container != "" && m.Container != e.Container.Name && m.Container != e.K8s.ContainerName &&
		!strings.HasPrefix(e.Container.ID, m.Container) {
		return false
	}
	if m.Image != "" && !strings.HasPrefix(e.Container.Image, m.Image) {
		return false
	}
	return true
}

// notePolicies runs on the sensor reader goroutine: the first event of a
// container whose cgroup has not been seen queues the matching policies for
// the worker. Only the reader touches g.seenCgroups.
func (g *Guard) notePolicies(e *event.Event) {
	if g.enforcer == nil || len(g.policies) == 0 || e.Container.ID == "" || e.Proc.CgroupID == 0 {
		return
	}
	if _, ok := g.seenCgroups[e.Proc.CgroupID]; ok {
		return
	}
	g.seenCgroups[e.Proc.CgroupID] = struct{}{}
	var rules []enforce.Rule
	for i, p := range g.cfg.Policies {
		if matches(p.Match, e) {
			rules = append(rules, g.policies[i])
		}
	}
	if len(rules) == 0 {
		return
	}
	rec := g.containers.Lookup(e.Proc.CgroupID, e.Proc.PID)
	if rec == nil {
		return
	}
	w := workloadOf(e)
	w.CgroupPath = filepath.Join(g.containers.Cgroup2Root(), rec.Path)
	w.Root = fmt.Sprintf("/proc/%d/root", e.Proc.PID)
	select {
	case g.applyQ <- applyReq{w: w, rules: rules}:
	default:
		g.applyDropped.Add(1)
		delete(g.seenCgroups, e.Proc.CgroupID) // retry on a later event
	}
}

// livePid returns a process of the cgroup, if any is left.
func livePid(cgroupPath string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(cgroupPath, "cgroup.procs"))
	if err != nil {
		return 0, false
	}
	best := 0
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 && (best == 0 || pid < best) {
			best = pid
		}
	}
	return best, best != 0
}

// policyWorker applies queued policies off the event path.
func (g *Guard) policyWorker(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case req := <-g.applyQ:
			// Resolve the container's paths through its oldest live
			// process (lowest pid: usually the container's init), not the
			// event's process, which may be a short-lived cat; retry once
			// if that process exits mid-way.
			if req.unlock {
				if err := g.enforcer.Unlock(req.w); err != nil {
					g.lockErrors.Add(1)
					g.log.Warn("unlock exec", "workload", req.w.Key(), "cgroup", req.w.CgroupPath, "err", err)
				}
				continue
			}
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				if pid, ok := livePid(req.w.CgroupPath); ok {
					req.w.Root = fmt.Sprintf("/proc/%d/root", pid)
				}
				if req.lock != nil {
					err = g.enforcer.Lock(req.w, *req.lock)
				} else {
					err = g.enforcer.Apply(req.w, req.rules)
				}
				if err == nil || !errors.Is(err, fs.ErrNotExist) {
					break
				}
			}
			if req.lock != nil {
				if err != nil {
					g.lockErrors.Add(1)
					g.log.Warn("exec lock", "workload", req.w.Key(), "cgroup", req.w.CgroupPath, "err", err)
					if !errors.Is(err, enforce.ErrProtected) {
						// Forget the push: the next tick retries it.
						g.lockMu.Lock()
						delete(g.locks.pushed, req.cgroup)
						g.lockMu.Unlock()
					}
					continue
				}
				g.lockPushes.Add(1)
				_, n := g.enforcer.Locked(req.w)
				g.log.Info("exec lock in force", "workload", req.w.Key(), "cgroup", req.w.CgroupPath, "entries", n)
				continue
			}
			if err != nil {
				g.applyErrors.Add(1)
				g.log.Warn("apply fast-path policy", "workload", req.w.Key(), "cgroup", req.w.CgroupPath, "err", err)
				continue
			}
			g.applied.Add(1)
			g.log.Info("fast-path policy applied", "workload", req.w.Key(), "cgroup", req.w.CgroupPath, "rules", len(req.rules))
		}
	}
}
