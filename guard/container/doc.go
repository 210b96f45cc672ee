// Package container owns the mapping from a task's cgroup to the container
// and Kubernetes pod it runs in, and fills event.Container and event.K8s.
//
// The kernel reports a cgroup v2 id (the inode of the cgroup2 directory).
// The Resolver maps that id to a path by walking the cgroup2 mount, parses
// the path for the runtime, container id and pod UID (ParsePath), matches
// plain runc containers against runc's own state dirs, and fills names and
// images asynchronously from the container runtime's API (CRI over gRPC or
// containerd's API). Missing metadata is left empty and counted, never
// replaced by placeholders such as "<NA>".
package container
