// Package deploy holds Vigil's install artifacts: the Helm chart
// (helm/vigil), the kustomize base rendered from it (kustomize/), and the
// systemd unit (systemd/). Its tests render the chart with a real helm
// binary and check what a cluster operator relies on.
package deploy
