package container

import (
	"context"
	"fmt"
	"time"
)

// Lister is a MetadataSource that can also enumerate every container it
// knows in one call. Warm uses it so that a guard starting on a busy node
// asks the runtime once, not once per container.
type Lister interface {
	// List returns metadata keyed by container id.
	List(ctx context.Context) (map[string]Metadata, error)
}

// WarmResult says what Warm found.
type WarmResult struct {
	Containers int // distinct containers among the live cgroups and runc state dirs
	Resolved   int // of those, with runtime metadata when Warm returned
	// Pending were still unresolved when ctx ended; their lookups continue
	// on the background worker and they are counted in Stats.WarmTimeouts.
	Pending int
	// NotFound no source knew (plain runc containers, for example, have no
	// runtime API; their cgroup-derived fields are still filled).
	NotFound int
	Took     time.Duration
}

func (w WarmResult) String() string {
	return fmt.Sprintf("%d containers, %d with metadata, %d unknown to the runtimes, %d pending after %s",
		w.Containers, w.Resolved, w.NotFound, w.Pending, w.Took.Round(time.Millisecond))
}

// Warm enumerates the containers already running (the cgroup2 tree and the
// runc state dirs) and fetches their runtime metadata before it returns, so
// that the first event of a container that was running when the guard
// (re)started carries its pod and image instead of waiting for the
// asynchronous lookup. Call it before the sensors deliver events.
//
// # Notes
//
//   - Sources that implement Lister are asked once for everything; the
//     rest are asked per container, in order, as Lookup would.
//   - ctx bounds the wait. Containers still unresolved when it ends are
//     handed to the background worker and counted in Stats.WarmTimeouts:
//     the guard starts anyway, and their first events are counted as
//     MetaPending like any other.
func (r *Resolver) Warm(ctx context.Context) WarmResult {
	start := r.cfg.Now()
	if err := r.rescan(true); err != nil {
		// New already walked once; keep what that walk found.
		r.stats.warmErrs.Add(1)
	}
	entries := r.warmRecords()
	res := WarmResult{Containers: len(entries)}
	if len(entries) == 0 || len(r.cfg.Sources) == 0 {
		res.Took = r.cfg.Now().Sub(start)
		return res
	}

	// Claim every entry the worker is not already handling, so an event
	// racing this (there should be none yet) cannot fetch it twice.
	var todo []*metaEntry
	for _, me := range entries {
		if me.meta.Load() != nil {
			continue
		}
		if s := me.state.Load(); (s == metaIdle || s == metaFailed) && me.state.CompareAndSwap(s, metaQueued) {
			todo = append(todo, me)
		}
	}

	for _, src := range r.cfg.Sources {
		if len(todo) == 0 || ctx.Err() != nil {
			break
		}
		l, ok := src.(Lister)
		if !ok {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, r.cfg.LookupTimeout)
		all, err := l.List(lctx)
		cancel()
		r.stats.lookups.Add(1)
		if err != nil {
			r.stats.errs.Add(1)
			continue
		}
		rest := todo[:0]
		for _, me := range todo {
			m, ok := all[me.info.ID]
			if !ok {
				rest = append(rest, me)
				continue
			}
			if m.Source == "" {
				m.Source = src.Name()
			}
			me.meta.Store(&m)
			me.state.Store(metaDone)
			r.stats.found.Add(1)
		}
		todo = rest
	}
	// What no lister knew: the per-container path (containerd namespaces
	// other than CRI's, for example), still within ctx.
	n := 0
	for n < len(todo) && r.fetchCtx(ctx, todo[n]) {
		n++
	}
	todo = todo[n:]
	for _, me := range todo {
		// Out of time: the worker takes over.
		me.state.Store(metaIdle)
		r.request(me)
		r.stats.warmTimeouts.Add(1)
		res.Pending++
	}
	for _, me := range entries {
		switch {
		case me.meta.Load() != nil:
			res.Resolved++
		case me.state.Load() == metaFailed:
			res.NotFound++
		}
	}
	res.Took = r.cfg.Now().Sub(start)
	return res
}

// warmRecords builds and caches a record for every container cgroup the
// last walk saw and returns their distinct metadata entries.
func (r *Resolver) warmRecords() []*metaEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[*metaEntry]bool)
	var out []*metaEntry
	for id, path := range r.paths {
		rec := r.records[id]
		if rec == nil {
			rec = r.buildLocked(id, path)
			if !rec.IsContainer() {
				// Host cgroups are built on demand, with their rechecks
				// timed from their first event.
				continue
			}
			r.records[id] = rec
		}
		if rec.IsContainer() && !seen[rec.meta] {
			seen[rec.meta] = true
			out = append(out, rec.meta)
		}
	}
	return out
}
