#!/usr/bin/env bash
# Installs the pinned kustomize into .cache/bin (from the Go module proxy, with the machine's Go),
# for `make test`'s offline build of the Kubernetes overlays. Idempotent: nothing to do when the
# right version is already there.
set -euo pipefail
VERSION=v5.8.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.cache/bin"
if [[ -x "$BIN/kustomize" ]] && [[ "$("$BIN/kustomize" version 2>/dev/null)" == "$VERSION" ]]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "ensure-kustomize: Go is needed to install kustomize $VERSION (go install)" >&2
  exit 1
fi
mkdir -p "$BIN"
echo "installing kustomize $VERSION into $BIN (go install, a few minutes the first time)"
GOBIN="$BIN" GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$VERSION"
"$BIN/kustomize" version
