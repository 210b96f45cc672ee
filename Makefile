# Vigil. `make run` starts the guard in audit mode on this host; `make test`
# runs every test tier. Both install what they need (scripts/deps.sh).
SHELL      := /bin/bash
GO         ?= go
BIN        := bin/vigil
CACHE      ?= /var/cache/vigil
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)
GOTESTFLAGS ?=
export CACHE

.PHONY: all build run test unit generate check-generate rules vmtest e2e bench deps clean manifests helm image soak

all: build

deps:
	@scripts/deps.sh all

build:
	@echo "==> build $(BIN)"
	@$(GO) build -trimpath -o $(BIN) ./cmd/vigil

# Starts the guard on this host in audit mode, printing events and alerts.
run: build
	@scripts/deps.sh base
	@$(MAKE) --no-print-directory rules
	@echo "==> starting vigil guard in audit mode: events and alerts as JSON lines; Ctrl-C to stop"
	@echo "    (alerts have a \"rule\" key; EVENTS=0 prints alerts only)"
	$(SUDO) $(BIN) guard --mode audit --rules wasm-rules/build --events=$(if $(filter 0,$(EVENTS)),false,true) --state-dir /var/lib/vigil

generate:
	@scripts/deps.sh base
	@echo "==> go generate (bpf2go with Debian clang 14)"
	@$(GO) generate ./bpf/... ./guard/event/...

# Fails when the committed generated code is stale (only where clang exists).
check-generate:
	@if command -v clang-14 >/dev/null; then \
		$(MAKE) --no-print-directory generate && \
		git diff --exit-code --stat -- bpf/ sdk/ docs/fields.md || \
		{ echo "generated code is stale: run make generate and commit"; exit 1; }; \
	else echo "==> clang-14 absent; skipping stale-output check"; fi

helm:
	@scripts/helm-bin.sh >/dev/null

# Regenerates the kustomize base from the Helm chart.
manifests: helm
	@scripts/manifests.sh

# Vigil's container image as an OCI image-layout tarball, built without a
# container engine: bin/vigil-image.tar (vigil.local/vigil:dev; IMAGE_REF
# and IMAGE_OUT override). Load with `ctr -n k8s.io images import` or
# `docker load -i` (Docker 25+).
image: rules
	@scripts/image.sh >/dev/null

rules:
	@scripts/deps.sh wasm
	@scripts/build-rules.sh

unit:
	@echo "==> go vet"
	@$(GO) vet ./...
	@echo "==> compiling every test binary"
	@$(GO) test -count=1 -run '^$$' ./... 2>&1 | grep -vE '^(ok|\?) ' || true
	@echo "==> go test, one package at a time (root tests load BPF and run containers; parallel packages would interfere)"
	@$(GO) test $(GOTESTFLAGS) -p 1 -count=1 -timeout 30m ./...

# The real-server behavior soak (issue #6): Debian's nginx, redis and
# postgres in runc containers under load learn to ready, run 10 minutes of
# normal load that must raise no alert, then get a shell, a new peer and an
# exec burst that must. About 17 minutes; VIGIL_SOAK=2m shortens the normal-
# load phase for a developer's run. Build-tagged so `make unit` stays short.
soak:
	@scripts/deps.sh base servers
	@$(MAKE) --no-print-directory rules
	@echo "==> behavior soak: nginx, redis, postgres under load (VIGIL_SOAK=$${VIGIL_SOAK:-10m} of normal load)"
	@$(GO) vet -tags soak ./guard/
	@$(GO) test -tags soak -run '^TestSoakRealServers$$' -count=1 -v -timeout 45m ./guard/

vmtest:
	@scripts/deps.sh vm
	@scripts/vmtest.sh

e2e:
	@scripts/deps.sh k8s
	@scripts/e2e.sh

# CI=true turns the unit tests' "toolchain missing" skips into failures:
# deps.sh has just installed every toolchain, so a missing one is a bug.
test: export CI := true
test:
	@echo "==> [$$(date -u +%T)] make test: deps"
	@scripts/deps.sh all
	@echo "==> [$$(date -u +%T)] make test: check-generate"
	@$(MAKE) --no-print-directory check-generate
	@echo "==> [$$(date -u +%T)] make test: rules"
	@$(MAKE) --no-print-directory rules
	@echo "==> [$$(date -u +%T)] make test: helm"
	@$(MAKE) --no-print-directory helm
	@echo "==> [$$(date -u +%T)] make test: image"
	@$(MAKE) --no-print-directory image
	@echo "==> [$$(date -u +%T)] make test: unit"
	@$(MAKE) --no-print-directory unit
	@echo "==> [$$(date -u +%T)] make test: soak"
	@$(MAKE) --no-print-directory soak
	@echo "==> [$$(date -u +%T)] make test: vmtest"
	@$(MAKE) --no-print-directory vmtest
	@echo "==> [$$(date -u +%T)] make test: e2e"
	@$(MAKE) --no-print-directory e2e
	@echo "==> [$$(date -u +%T)] make test: all passed"

bench: build
	@scripts/deps.sh base
	@scripts/bench.sh

clean:
	rm -rf bin wasm-rules/build
