package container

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Well-known CRI runtime sockets.
const (
	ContainerdSocket = "/run/containerd/containerd.sock"
	CRIOSocket       = "/run/crio/crio.sock"
)

// CRISource looks containers up through the Kubernetes Container Runtime
// Interface (runtime.v1 over gRPC), which containerd and cri-o both serve.
// It knows only containers created through CRI, i.e. Kubernetes pods.
type CRISource struct {
	socket string

	mu     sync.Mutex
	conn   *grpc.ClientConn
	client runtimeapi.RuntimeServiceClient
	closed bool
}

// NewCRISource returns a source for the CRI endpoint at socket (a unix
// socket path). It does not connect until the first lookup, so a runtime
// that starts after the guard is picked up.
func NewCRISource(socket string) *CRISource { return &CRISource{socket: socket} }

// Name implements MetadataSource.
func (s *CRISource) Name() string { return "cri:" + s.socket }

func (s *CRISource) rpc() (runtimeapi.RuntimeServiceClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("cri source closed")
	}
	if s.client == nil {
		conn, err := grpc.NewClient("unix://"+s.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial cri %s: %w", s.socket, err)
		}
		s.conn, s.client = conn, runtimeapi.NewRuntimeServiceClient(conn)
	}
	return s.client, nil
}

// Lookup implements MetadataSource with CRI ListContainers (filtered by id,
// which also yields the pod sandbox id) and PodSandboxStatus for the pod's
// own labels, where the revision hash lives.
func (s *CRISource) Lookup(ctx context.Context, info PathInfo) (Metadata, error) {
	c, err := s.rpc()
	if err != nil {
		return Metadata{}, err
	}
	resp, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: info.ID}})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return Metadata{}, ErrNotFound
		}
		return Metadata{}, fmt.Errorf("cri list containers %s: %w", info.ID, err)
	}
	var ctr *runtimeapi.Container
	for _, cand := range resp.GetContainers() {
		// Runtimes match the filter by id prefix; insist on the full id.
		if cand.GetId() == info.ID {
			ctr = cand
		}
	}
	if ctr == nil {
		return Metadata{}, ErrNotFound
	}
	m := criMetadata(s.Name(), ctr)
	if sb := ctr.GetPodSandboxId(); sb != "" {
		// The revision is a pod label, not a container label. A failure
		// here leaves only the revision empty.
		if st, err := c.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb}); err == nil {
			m.Revision = revisionOf(st.GetStatus().GetLabels())
		}
	}
	return m, nil
}

// List implements Lister with one ListContainers and one ListPodSandbox
// call, however many pods the node runs.
func (s *CRISource) List(ctx context.Context) (map[string]Metadata, error) {
	c, err := s.rpc()
	if err != nil {
		return nil, err
	}
	resp, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("cri list containers: %w", err)
	}
	revs := make(map[string]string)
	// Without the sandboxes only revisions are missing; keep the rest.
	if sbs, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
		for _, sb := range sbs.GetItems() {
			revs[sb.GetId()] = revisionOf(sb.GetLabels())
		}
	}
	out := make(map[string]Metadata, len(resp.GetContainers()))
	for _, ctr := range resp.GetContainers() {
		m := criMetadata(s.Name(), ctr)
		m.Revision = revs[ctr.GetPodSandboxId()]
		out[ctr.GetId()] = m
	}
	return out, nil
}

func criMetadata(source string, ctr *runtimeapi.Container) Metadata {
	m := Metadata{Source: source}
	m.Name = ctr.GetMetadata().GetName()
	m.Image = ctr.GetImage().GetImage()
	// ImageRef is the digest-pinned reference the runtime resolved.
	m.ImageDigest = digestOf(ctr.GetImageRef())
	if m.ImageDigest == "" {
		m.ImageDigest = digestOf(ctr.GetImageId())
	}
	fillFromLabels(&m, ctr.GetLabels())
	return m
}

// Close implements MetadataSource; it is safe to call twice.
func (s *CRISource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn, s.client = nil, nil
	return err
}
