package container

import (
	"context"
	"fmt"
	"sync"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ContainerdSource looks containers up through containerd's own gRPC API
// (containers and images services). Unlike CRI it sees every containerd
// namespace: `ctr run`, nerdctl, docker's "moby" namespace and CRI's
// "k8s.io" alike.
type ContainerdSource struct {
	socket string

	mu     sync.Mutex
	conn   *grpc.ClientConn
	closed bool
}

// NewContainerdSource returns a source for the containerd socket at path. It
// connects lazily.
func NewContainerdSource(socket string) *ContainerdSource {
	return &ContainerdSource{socket: socket}
}

// Name implements MetadataSource.
func (s *ContainerdSource) Name() string { return "containerd:" + s.socket }

func (s *ContainerdSource) dial() (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("containerd source closed")
	}
	if s.conn == nil {
		conn, err := grpc.NewClient("unix://"+s.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial containerd %s: %w", s.socket, err)
		}
		s.conn = conn
	}
	return s.conn, nil
}

// namespaceKey is the gRPC metadata header containerd reads the namespace
// from.
const namespaceKey = "containerd-namespace"

// Lookup implements MetadataSource. It tries the namespace the cgroup path
// or state dir named, else every namespace containerd lists.
func (s *ContainerdSource) Lookup(ctx context.Context, info PathInfo) (Metadata, error) {
	conn, err := s.dial()
	if err != nil {
		return Metadata{}, err
	}
	namespaces := []string{info.Namespace}
	if info.Namespace == "" {
		resp, err := namespacesapi.NewNamespacesClient(conn).List(ctx, &namespacesapi.ListNamespacesRequest{})
		if err != nil {
			return Metadata{}, fmt.Errorf("list containerd namespaces: %w", err)
		}
		namespaces = namespaces[:0]
		for _, ns := range resp.GetNamespaces() {
			namespaces = append(namespaces, ns.GetName())
		}
	}
	containers := containersapi.NewContainersClient(conn)
	for _, ns := range namespaces {
		nctx := metadata.AppendToOutgoingContext(ctx, namespaceKey, ns)
		resp, err := containers.Get(nctx, &containersapi.GetContainerRequest{ID: info.ID})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return Metadata{}, fmt.Errorf("get containerd container %s/%s: %w", ns, info.ID, err)
		}
		m, err := s.metadata(nctx, conn, resp.GetContainer(), nil)
		if err != nil {
			return Metadata{}, err
		}
		return m, nil
	}
	return Metadata{}, ErrNotFound
}

// List implements Lister: every container of every containerd namespace,
// with one image lookup per distinct image.
func (s *ContainerdSource) List(ctx context.Context) (map[string]Metadata, error) {
	conn, err := s.dial()
	if err != nil {
		return nil, err
	}
	nss, err := namespacesapi.NewNamespacesClient(conn).List(ctx, &namespacesapi.ListNamespacesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containerd namespaces: %w", err)
	}
	out := make(map[string]Metadata)
	// Ids are unique per namespace only (`ctr run` takes any name); an id
	// found twice is left out, for Lookup to resolve with the namespace
	// the container's cgroup path or state dir names.
	dup := make(map[string]bool)
	containers := containersapi.NewContainersClient(conn)
	for _, ns := range nss.GetNamespaces() {
		nctx := metadata.AppendToOutgoingContext(ctx, namespaceKey, ns.GetName())
		resp, err := containers.List(nctx, &containersapi.ListContainersRequest{})
		if err != nil {
			return nil, fmt.Errorf("list containerd containers in %s: %w", ns.GetName(), err)
		}
		digests := make(map[string]string)
		for _, c := range resp.GetContainers() {
			m, err := s.metadata(nctx, conn, c, digests)
			if err != nil {
				return nil, err
			}
			if _, seen := out[c.GetID()]; seen || dup[c.GetID()] {
				delete(out, c.GetID())
				dup[c.GetID()] = true
				continue
			}
			out[c.GetID()] = m
		}
	}
	return out, nil
}

// metadata builds a container's Metadata, looking its image's digest up in
// ctx's namespace; digests, when not nil, caches them by image name.
func (s *ContainerdSource) metadata(ctx context.Context, conn *grpc.ClientConn, c *containersapi.Container, digests map[string]string) (Metadata, error) {
	m := Metadata{Source: s.Name(), Name: c.GetID(), Image: c.GetImage()}
	if n := c.GetLabels()["nerdctl/name"]; n != "" {
		m.Name = n
	}
	fillFromLabels(&m, c.GetLabels())
	if m.Image == "" {
		return m, nil
	}
	if d, ok := digests[m.Image]; ok {
		m.ImageDigest = d
		return m, nil
	}
	img, err := imagesapi.NewImagesClient(conn).Get(ctx, &imagesapi.GetImageRequest{Name: m.Image})
	switch {
	case err == nil:
		m.ImageDigest = img.GetImage().GetTarget().GetDigest()
	case status.Code(err) == codes.NotFound:
		// The image was removed after the container was created; the
		// name is still right, the digest is unknown.
	default:
		return Metadata{}, fmt.Errorf("get containerd image %s: %w", m.Image, err)
	}
	if digests != nil {
		digests[m.Image] = m.ImageDigest
	}
	return m, nil
}

// Close implements MetadataSource; it is safe to call twice.
func (s *ContainerdSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
