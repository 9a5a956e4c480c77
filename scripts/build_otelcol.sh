#!/usr/bin/env bash
# Build the real OpenTelemetry Collector from otelcol/builder-config.yaml, once per machine.
#
# Everything (builder binary, GOPATH, GOCACHE, generated sources, the Collector binary) lives in
#   ${OTELPROF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/otelprof}/otelcol-<version>/
# outside the checkout. A second run is a no-op while the binary exists and the manifest is
# unchanged (its sha256 is recorded next to the binary). Needs only Go and the Go module proxy.
# The last line printed is the absolute path of the Collector binary.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="${OTELCOL_MANIFEST:-$repo_root/otelcol/builder-config.yaml}"

log() { echo "build_otelcol: $*" >&2; }

command -v go >/dev/null 2>&1 || { log "Go is required (https://go.dev/doc/install)"; exit 1; }
[[ -f "$manifest" ]] || { log "manifest not found: $manifest"; exit 1; }

# The builder is pinned to the manifest's own release: one version, written once.
version="$(sed -n 's/^  version:[[:space:]]*\([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$manifest" | head -n 1)"
name="$(sed -n 's/^  name:[[:space:]]*\([A-Za-z0-9_.-]*\)[[:space:]]*$/\1/p' "$manifest" | head -n 1)"
[[ -n "$version" && -n "$name" ]] || { log "dist.version / dist.name missing in $manifest"; exit 1; }

cache_root="${OTELPROF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/otelprof}"
work="$cache_root/otelcol-$version"
dist="$work/dist"
binary="$dist/$name"
stamp="$work/manifest.sha256"
mkdir -p "$work"

manifest_hash="$(sha256sum "$manifest" | cut -d' ' -f1)"
is_current() { [[ -x "$binary" && -f "$stamp" && "$(cat "$stamp")" == "$manifest_hash" ]]; }

if is_current; then
    echo "$binary"
    exit 0
fi

# Two test sessions starting at once must not build into the same directory concurrently.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$work/.lock"
    flock 9
    if is_current; then
        echo "$binary"
        exit 0
    fi
fi

# Keep Go's caches beside the build so nothing lands in the user's GOPATH or the checkout;
# -modcacherw keeps the module cache deletable with a plain `rm -rf`.
export GOPATH="$work/gopath"
export GOMODCACHE="$GOPATH/pkg/mod"
export GOCACHE="$work/gocache"
export GOBIN="$work/bin"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw"
export CGO_ENABLED=0

start_seconds=$SECONDS
log "building OpenTelemetry Collector v$version into $work (first build takes a few minutes)"

go install "go.opentelemetry.io/collector/cmd/builder@v$version" >&2

# The committed manifest has no output path (it differs per machine): add it to a copy.
generated="$work/builder-config.generated.yaml"
awk -v out="$dist" '{ print } /^dist:[[:space:]]*$/ { print "  output_path: " out }' \
    "$manifest" >"$generated"

rm -f "$stamp"
"$GOBIN/builder" --config "$generated" >&2

[[ -x "$binary" ]] || { log "builder finished but $binary is missing"; exit 1; }
echo "$manifest_hash" >"$stamp"
log "built in $((SECONDS - start_seconds)) s"
echo "$binary"
