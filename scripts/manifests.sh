#!/usr/bin/env bash
# Renders the Helm chart into the kustomize base. The base assumes
# cert-manager for the webhook's TLS (a render without it would embed a
# freshly generated CA, different on every run); Helm installs handle both.
set -euo pipefail
cd "$(dirname "$0")/.."
helm=${VIGIL_HELM:-$(scripts/helm-bin.sh)}
render() {
	"$helm" template vigil deploy/helm/vigil -n vigil-system --include-crds --api-versions cert-manager.io/v1 |
		grep -v '^# Source:'
}
if [[ "${1:-}" == "--stdout" ]]; then render; exit 0; fi
render > deploy/kustomize/base/vigil.yaml
echo "==> wrote deploy/kustomize/base/vigil.yaml"
