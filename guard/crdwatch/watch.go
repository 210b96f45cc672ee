// Package crdwatch owns the guard's side of the WorkloadProfile custom
// resource: an informer that watches the objects the webhook writes and
// seeds behavior detection with each revision's expected behavior and
// release window, and a throttled writer of this node's learned-state
// summary into the objects' status. The guard's own bbolt store
// (guard/baseline) stays the source of truth for the full learned profile;
// the status is a summary for `kubectl get wlp`, never read back.
package crdwatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook/crd"
)

// Sink receives what the watcher reads and supplies what the status
// reports. baseline.Detector implements it; the guard wraps it to also
// name workloads.
type Sink interface {
	// Seed folds one container's expected behavior into its profile.
	Seed(profile.Expected)
	// SetWindows replaces the known release windows.
	SetWindows([]profile.ReleaseWindow)
	// Profiles summarizes the learned profiles on this node.
	Profiles() []baseline.Summary
}

// Config configures a Watcher.
type Config struct {
	// Client reaches the API server.
	Client dynamic.Interface
	// Node names this guard's entry in the objects' status.nodes.
	Node string
	// StatusInterval is how often learned state is compared with what
	// was last written and changed entries applied [30s]. At most one
	// status write per object per interval, and none while nothing
	// changed.
	StatusInterval time.Duration
	// Resync is the informer's resync period [10m].
	Resync time.Duration
	// RequestTimeout bounds one status apply [10s].
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Now is the clock of the status' updated field (default time.Now).
	Now func() time.Time
}

// Stats counts what the watcher did.
type Stats struct {
	Seeded        uint64 // objects whose containers were seeded
	Invalid       uint64 // objects skipped as unusable
	StatusWrites  uint64 // status applies that landed
	StatusErrors  uint64 // status applies that failed (retried next interval)
	StatusSkipped uint64 // learned profiles with no WorkloadProfile object
}

// Watcher watches WorkloadProfiles and writes this node's status.
type Watcher struct {
	cfg      Config
	sink     Sink
	factory  dynamicinformer.DynamicSharedInformerFactory
	informer cache.SharedIndexInformer

	mu sync.Mutex
	// seen is the generation last seeded per object UID: status writes
	// (ours and other nodes') do not bump it, so they do not re-seed.
	seen map[string]int64
	// written is the node status last applied per object key.
	written map[string]crd.NodeStatus

	seeded, invalid, writes, writeErrs, skipped atomic.Uint64

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// New builds a watcher; Run starts it.
func New(cfg Config, sink Sink) (*Watcher, error) {
	if cfg.Client == nil {
		return nil, errors.New("crdwatch: no client")
	}
	if cfg.Node == "" {
		return nil, errors.New("crdwatch: no node name")
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = 30 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Minute
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Watcher{cfg: cfg, sink: sink, seen: map[string]int64{}, written: map[string]crd.NodeStatus{}, done: make(chan struct{})}
	w.factory = dynamicinformer.NewDynamicSharedInformerFactory(cfg.Client, cfg.Resync)
	w.informer = w.factory.ForResource(crd.GVR).Informer()
	_, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.onChange(obj) },
		UpdateFunc: func(_, obj any) { w.onChange(obj) },
		DeleteFunc: func(obj any) { w.onDelete(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("crdwatch: add handler: %w", err)
	}
	return w, nil
}

// Run watches until ctx ends or Close, writing status every interval.
func (w *Watcher) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	defer close(w.done)
	defer cancel()
	w.factory.Start(ctx.Done())
	defer w.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return
	}
	w.cfg.Logger.Info("workloadprofiles synced", "objects", len(w.informer.GetStore().ListKeys()))
	t := time.NewTicker(w.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.WriteStatus(ctx)
		}
	}
}

// Synced reports whether the informer has listed every object once.
func (w *Watcher) Synced() bool { return w.informer.HasSynced() }

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	return Stats{Seeded: w.seeded.Load(), Invalid: w.invalid.Load(), StatusWrites: w.writes.Load(),
		StatusErrors: w.writeErrs.Load(), StatusSkipped: w.skipped.Load()}
}

func decode(obj any) (*crd.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("%w: %T", crd.ErrInvalid, obj)
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", crd.ErrInvalid, err)
	}
	return crd.Decode(b)
}

func (w *Watcher) onChange(obj any) {
	o, err := decode(obj)
	if err != nil {
		w.invalid.Add(1)
		w.cfg.Logger.Warn("workloadprofile skipped", "err", err)
		return
	}
	w.mu.Lock()
	gen, ok := w.seen[o.Metadata.UID]
	fresh := !ok || gen != o.Metadata.Generation
	w.seen[o.Metadata.UID] = o.Metadata.Generation
	w.mu.Unlock()
	if fresh {
		ps, _ := o.Profiles()
		for _, p := range ps {
			w.sink.Seed(p)
		}
		w.seeded.Add(1)
		w.setWindows()
	}
}

func (w *Watcher) onDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		w.mu.Lock()
		delete(w.seen, string(u.GetUID()))
		delete(w.written, u.GetNamespace()+"/"+u.GetName())
		w.mu.Unlock()
	}
	w.setWindows()
}

// setWindows hands the detector every window the objects carry; it keeps
// only the one matching each profile, open or not.
func (w *Watcher) setWindows() {
	var ws []profile.ReleaseWindow
	for _, obj := range w.informer.GetStore().List() {
		o, err := decode(obj)
		if err != nil {
			continue
		}
		if _, rw := o.Profiles(); rw != nil {
			ws = append(ws, *rw)
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].Opened.Before(ws[j].Opened) })
	w.sink.SetWindows(ws)
}

// WriteStatus applies this node's entry to every object whose learned
// state changed since the last write. Run calls it every StatusInterval.
func (w *Watcher) WriteStatus(ctx context.Context) {
	byObj := map[string]*crd.NodeStatus{}
	for _, s := range w.sink.Profiles() {
		key := s.Key.Namespace + "/" + crd.Name(s.Key.Workload, s.Key.Revision)
		ns := byObj[key]
		if ns == nil {
			ns = &crd.NodeStatus{Node: w.cfg.Node}
			byObj[key] = ns
		}
		ns.Containers = append(ns.Containers, crd.ContainerStatus{
			Name: s.Key.Container, State: s.State.String(), Behaviors: s.Behaviors, Learned: s.Learned,
			Parent: s.Parent, FirstSeen: s.Created.UTC(), LastNew: s.LastNew.UTC(), ReadyAt: s.ReadyAt.UTC(),
		})
	}
	keys := make([]string, 0, len(byObj))
	for k := range byObj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		ns := byObj[key]
		sort.Slice(ns.Containers, func(i, j int) bool { return ns.Containers[i].Name < ns.Containers[j].Name })
		if _, exists, _ := w.informer.GetStore().GetByKey(key); !exists {
			// Learned from a pod the webhook recorded no object for
			// (admitted before the webhook, or another cluster's).
			w.skipped.Add(1)
			continue
		}
		w.mu.Lock()
		prev, ok := w.written[key]
		w.mu.Unlock()
		if ok && reflect.DeepEqual(prev.Containers, ns.Containers) {
			continue
		}
		ns.Updated = w.cfg.Now().UTC().Truncate(time.Second)
		if err := w.applyStatus(ctx, key, *ns); err != nil {
			w.writeErrs.Add(1)
			w.cfg.Logger.Warn("workloadprofile status", "object", key, "err", err)
			continue
		}
		w.writes.Add(1)
		w.mu.Lock()
		w.written[key] = *ns
		w.mu.Unlock()
	}
}

// Manager is this node's field manager for status applies: one per node,
// so each guard owns exactly its own status.nodes entry.
func (w *Watcher) Manager() string { return "vigil-guard/" + w.cfg.Node }

func (w *Watcher) applyStatus(ctx context.Context, key string, ns crd.NodeStatus) error {
	namespace, name, _ := cache.SplitMetaNamespaceKey(key)
	body, err := json.Marshal(map[string]any{
		"apiVersion": crd.APIVersion, "kind": crd.Kind,
		"metadata": map[string]string{"name": name, "namespace": namespace},
		"status":   crd.Status{Nodes: []crd.NodeStatus{ns}},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	defer cancel()
	force := true
	_, err = w.cfg.Client.Resource(crd.GVR).Namespace(namespace).Patch(ctx, name, types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: w.Manager(), Force: &force}, "status")
	if apierrors.IsNotFound(err) {
		// Deleted since the informer saw it.
		return nil
	}
	return err
}

// Close stops a running watcher and waits for it. Safe to call twice, and
// before or without Run.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		cancel := w.cancel
		w.mu.Unlock()
		if cancel != nil {
			cancel()
			<-w.done
		}
	})
	return nil
}
