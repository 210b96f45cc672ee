package crd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vigilsec/vigil/guard/profile"
)

// Field managers of the webhook's server-side applies. The containers and
// the release window have separate owners because a rollback to a known
// revision opens a window without re-deriving the containers: an apply of
// the window alone by the containers' manager would delete them.
const (
	ManagerProfile = "vigil-webhook"
	ManagerWindow  = "vigil-webhook-window"
)

// Applier sends one server-side apply of body (a JSON object) to
// namespace/name as manager. The dynamic client implements it in
// NewDynamicApplier; tests substitute their own.
type Applier interface {
	Apply(ctx context.Context, namespace, name, manager string, body []byte) error
}

// NewDynamicApplier applies WorkloadProfiles through client.
func NewDynamicApplier(client dynamic.Interface) Applier { return dynApplier{client} }

type dynApplier struct{ c dynamic.Interface }

func (d dynApplier) Apply(ctx context.Context, ns, name, manager string, body []byte) error {
	force := true
	_, err := d.c.Resource(GVR).Namespace(ns).Patch(ctx, name, types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: manager, Force: &force})
	return err
}

// WriterConfig configures a Writer. Zero values mean the defaults.
type WriterConfig struct {
	// QueueSize bounds the revisions waiting to be written [1024]. An
	// update of a revision already queued merges into its entry and never
	// drops.
	QueueSize int
	// RequestTimeout bounds one apply [10s].
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed apply
	// [200ms, 30s]; it doubles per consecutive failure.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Writer writes admitted revisions to WorkloadProfile objects off the
// admission path: Enqueue never blocks and never fails the request; a
// single goroutine applies the queue in order, retrying transient failures
// (API server down, slow, throttling) with exponential backoff. What the
// bounded queue cannot hold is dropped and counted; the webhook's bbolt
// store still has it, and the next start re-queues the store (see Resync).
type Writer struct {
	cfg   WriterConfig
	apply Applier

	mu      sync.Mutex
	pending map[string]*item // by namespace/name
	order   []string         // FIFO of pending keys
	// inflight is 1 while the writer applies an item it took off the
	// queue: it still counts as pending.
	inflight int
	wake     chan struct{}

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	writes  *prometheus.CounterVec
	dropped prometheus.Counter
	depth   prometheus.GaugeFunc
}

type item struct {
	key        string
	obj        Object // containers and/or window
	containers bool
}

// NewWriter starts a writer applying through a.
func NewWriter(a Applier, cfg WriterConfig) *Writer {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{
		cfg: cfg, apply: a, pending: map[string]*item{}, wake: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_webhook_crd_writes_total",
			Help: "WorkloadProfile applies, by result: ok, retry (transient failure, retried with backoff), failed (rejected by the API server, not retried).",
		}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_crd_dropped_total",
			Help: "Revisions not written to WorkloadProfiles because the write queue was full (still in the bbolt store).",
		}),
	}
	w.depth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_webhook_crd_queue_depth", Help: "Revisions waiting to be written to WorkloadProfiles.",
	}, func() float64 { return float64(w.Pending()) })
	go w.run(ctx)
	return w
}

// Collectors are the writer's metrics, for the webhook's registry.
func (w *Writer) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.writes, w.dropped, w.depth}
}

// Pending is the number of revisions not written yet, the one being
// applied included.
func (w *Writer) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + w.inflight
}

// settle marks the in-flight item done (written, rejected or requeued).
func (w *Writer) settle() {
	w.mu.Lock()
	w.inflight = 0
	w.mu.Unlock()
}

// Enqueue queues a revision's profiles (nil when only a window opened) and
// its release window (nil when none opened). It reports false when the
// queue was full and the update was dropped.
func (w *Writer) Enqueue(wk profile.WorkloadKey, revision string, ps []profile.Expected, rw *profile.ReleaseWindow) bool {
	if len(ps) == 0 && rw == nil {
		return true
	}
	it := &item{obj: FromProfiles(wk, revision, ps, rw), containers: len(ps) > 0}
	it.key = it.obj.Metadata.Namespace + "/" + it.obj.Metadata.Name
	w.mu.Lock()
	if cur, ok := w.pending[it.key]; ok {
		cur.merge(it)
	} else if len(w.pending) >= w.cfg.QueueSize {
		w.mu.Unlock()
		w.dropped.Inc()
		return false
	} else {
		w.pending[it.key] = it
		w.order = append(w.order, it.key)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// merge folds a newer update of the same object into it.
func (it *item) merge(newer *item) {
	if newer.containers {
		it.obj.Spec.Containers, it.containers = newer.obj.Spec.Containers, true
	}
	if newer.obj.Spec.ReleaseWindow != nil {
		it.obj.Spec.ReleaseWindow = newer.obj.Spec.ReleaseWindow
	}
}

// next pops the oldest pending item, waiting for one.
func (w *Writer) next(ctx context.Context) (*item, bool) {
	for {
		w.mu.Lock()
		if len(w.order) > 0 {
			k := w.order[0]
			w.order = w.order[1:]
			it := w.pending[k]
			delete(w.pending, k)
			w.inflight = 1
			w.mu.Unlock()
			return it, true
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-w.wake:
		}
	}
}

// requeue puts a failed item back at the head; an update that arrived
// meanwhile is newer and wins field by field.
func (w *Writer) requeue(it *item) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight = 0
	if cur, ok := w.pending[it.key]; ok {
		it.merge(cur)
		w.pending[it.key] = it
		return
	}
	w.pending[it.key] = it
	w.order = append([]string{it.key}, w.order...)
}

func (w *Writer) run(ctx context.Context) {
	defer close(w.done)
	backoff := w.cfg.MinBackoff
	for {
		it, ok := w.next(ctx)
		if !ok {
			return
		}
		err := w.write(ctx, it)
		if err == nil || ctx.Err() != nil || Permanent(err) {
			w.settle()
		}
		switch {
		case err == nil:
			w.writes.WithLabelValues("ok").Inc()
			backoff = w.cfg.MinBackoff
			continue
		case ctx.Err() != nil:
			return
		case Permanent(err):
			w.writes.WithLabelValues("failed").Inc()
			w.cfg.Logger.Error("workloadprofile rejected", "object", it.key, "err", err)
			continue
		}
		w.writes.WithLabelValues("retry").Inc()
		w.cfg.Logger.Warn("workloadprofile write failed; retrying", "object", it.key, "in", backoff, "err", err)
		w.requeue(it)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// write applies the item: the containers (which create the object) first,
// then the window under its own manager.
func (w *Writer) write(ctx context.Context, it *item) error {
	base := it.obj
	base.Spec.Containers, base.Spec.ReleaseWindow = nil, nil
	if it.containers {
		o := base
		o.Spec.Containers = it.obj.Spec.Containers
		if err := w.applyOne(ctx, &o, ManagerProfile); err != nil {
			return err
		}
		// Written: a retry of the window must not re-send them.
		it.containers = false
		it.obj.Spec.Containers = nil
	}
	if it.obj.Spec.ReleaseWindow != nil {
		o := base
		o.Spec.ReleaseWindow = it.obj.Spec.ReleaseWindow
		if err := w.applyOne(ctx, &o, ManagerWindow); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) applyOne(ctx context.Context, o *Object, manager string) error {
	body, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("marshal %s/%s: %w", o.Metadata.Namespace, o.Metadata.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	defer cancel()
	if err := w.apply.Apply(ctx, o.Metadata.Namespace, o.Metadata.Name, manager, body); err != nil {
		return fmt.Errorf("apply %s/%s: %w", o.Metadata.Namespace, o.Metadata.Name, err)
	}
	return nil
}

// Permanent reports whether an apply error will not go away by retrying
// the same body: the API server rejected the object itself. Everything
// else (unreachable, timeouts, 5xx, throttling, conflicts, the CRD or
// the RBAC not installed yet) is retried.
func Permanent(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err)
}

// Close stops the writer; revisions still queued are not written (the
// bbolt store keeps them for Resync at the next start). Safe to call twice.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		<-w.done
		if n := w.Pending(); n > 0 {
			w.cfg.Logger.Warn("workloadprofile writer closed with revisions unwritten (re-queued from the store at the next start)", "pending", n)
		}
	})
	return nil
}

// RESTConfig is the API server connection of the webhook and the guards:
// the kubeconfig file when one is given, else the pod's service account.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return c, nil
}

// InCluster reports whether this process runs in a Kubernetes pod (the
// service-account environment the API server injects).
func InCluster() bool { return os.Getenv("KUBERNETES_SERVICE_HOST") != "" }
