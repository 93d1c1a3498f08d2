#!/usr/bin/env bash
# Build the sandbox image agentic-vision/sandbox:latest from Dockerfile.sandbox.
#
#   scripts/build-sandbox-image.sh               # start Docker if needed, build unless current
#   scripts/build-sandbox-image.sh --force       # build even if the image is current
#   scripts/build-sandbox-image.sh --print-hash  # print the source hash and exit
#
# Steps: scripts/start-docker.sh; choose the base image (python:3.11-slim when
# it is present or can be pulled, else the local Debian image that
# scripts/make-base-image.sh builds); stage a small build context in a temp dir
# (Dockerfile.sandbox, sandbox/, the CA bundle, an optional wheelhouse); build.
# The build is skipped when agentic-vision/sandbox:latest already carries the
# current source hash and base image in its labels.
#
# Source files and hash (label org.agentic-vision.sandbox.hash): defined once, in
# agentic_vision/sandboxing/image_source.py (run here with python3; the Docker
# executor imports it to tell a stale image).
#
# Environment:
#   AGENTIC_VISION_IMAGE        tag to build (default agentic-vision/sandbox:latest)
#   AGENTIC_VISION_BASE_IMAGE   base image to use; if it is agentic-vision/base:* and
#                               missing it is made with make-base-image.sh
#   AGENTIC_VISION_NO_PULL=1    don't try `docker pull python:3.11-slim`
#   AGENTIC_VISION_BUILD_CA     CA bundle for pip inside the build (default: pip's
#                               cert setting, PIP_CERT, REQUESTS_CA_BUNDLE,
#                               SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt);
#                               "none" to use the image's own (certifi) roots
#   AGENTIC_VISION_WHEELHOUSE   a directory of wheels (pip wheel -r sandbox/requirements.txt
#                               -w DIR, made with CPython 3.11 on linux x86_64): install
#                               from it alone (--no-index), no index needed
#   AGENTIC_VISION_BUILD_NETWORK  network of the build's RUN steps (default host: needs
#                               neither NAT nor a resolver reachable from a bridge)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${AGENTIC_VISION_IMAGE:-agentic-vision/sandbox:latest}"
DEFAULT_BASE="python:3.11-slim"
LOCAL_BASE="agentic-vision/base:bookworm"
FORCE=0
PRINT_HASH=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --print-hash) PRINT_HASH=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf '[build-sandbox-image] %s\n' "$*" >&2; }
die() { printf '[build-sandbox-image] ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

IMAGE_SOURCE="$REPO/agentic_vision/sandboxing/image_source.py"
source_files() { python3 "$IMAGE_SOURCE" --files "$REPO"; }
HASH="$(python3 "$IMAGE_SOURCE" "$REPO")" || die "cannot hash the sandbox sources (is python3 installed?)"
if [ "$PRINT_HASH" = 1 ]; then
    echo "$HASH"
    exit 0
fi

t_all=$(date +%s)

# --- 1. engine -------------------------------------------------------------------
t=$(date +%s)
"$REPO/scripts/start-docker.sh"
log "engine ready ($(elapsed "$t"))"

# --- 2. base image ---------------------------------------------------------------
t=$(date +%s)
if [ -n "${AGENTIC_VISION_BASE_IMAGE:-}" ]; then
    BASE="$AGENTIC_VISION_BASE_IMAGE"
    if ! docker image inspect "$BASE" >/dev/null 2>&1; then
        case "$BASE" in
            agentic-vision/base:*) BASE_TAG="$BASE" "$REPO/scripts/make-base-image.sh" ;;
            *) docker pull "$BASE" >&2 || die "base image $BASE is not here and cannot be pulled" ;;
        esac
    fi
elif docker image inspect "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE="$DEFAULT_BASE"
elif [ "${AGENTIC_VISION_NO_PULL:-0}" != 1 ] && timeout 300 docker pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE="$DEFAULT_BASE"
else
    log "$DEFAULT_BASE is not here and cannot be pulled: using the local Debian base $LOCAL_BASE"
    BASE="$LOCAL_BASE"
    BASE_TAG="$LOCAL_BASE" "$REPO/scripts/make-base-image.sh"
fi
log "base image: $BASE ($(elapsed "$t"))"

# --- 3. current already? ---------------------------------------------------------
if [ "$FORCE" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    have_hash="$(docker image inspect -f '{{index .Config.Labels "org.agentic-vision.sandbox.hash"}}' "$IMAGE" 2>/dev/null || true)"
    have_base="$(docker image inspect -f '{{index .Config.Labels "org.agentic-vision.sandbox.base"}}' "$IMAGE" 2>/dev/null || true)"
    if [ "$have_hash" = "$HASH" ] && [ "$have_base" = "$BASE" ]; then
        log "$IMAGE is current (hash ${HASH:0:12}, base $BASE): nothing to build (--force rebuilds)"
        exit 0
    fi
    log "$IMAGE is out of date (hash ${have_hash:0:12} -> ${HASH:0:12}, base ${have_base:-?} -> $BASE)"
fi

# --- 4. build context --------------------------------------------------------------
CTX="$(mktemp -d /tmp/agentic-vision-build.XXXXXX)"
trap 'rm -rf "$CTX"' EXIT
(cd "$REPO" && source_files | tr '\n' '\0' | xargs -0 cp --parents -t "$CTX")

CA="${AGENTIC_VISION_BUILD_CA:-}"
if [ -z "$CA" ]; then
    pip_cert="$( (python3 -m pip config list 2>/dev/null || true) | sed -n "s/^[^ ]*\.cert='\(.*\)'$/\1/p" | head -n1)"
    for c in "$pip_cert" "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "$c" ] && [ -s "$c" ]; then CA="$c"; break; fi
    done
fi
if [ -n "$CA" ] && [ "$CA" != none ]; then
    [ -s "$CA" ] || die "CA bundle $CA not found"
    cp "$CA" "$CTX/build-ca.pem"
    log "pip in the build trusts $CA"
else
    log "no CA bundle passed: pip in the build uses the image's own roots"
fi

WHEEL_ARG=0
if [ -n "${AGENTIC_VISION_WHEELHOUSE:-}" ]; then
    [ -d "$AGENTIC_VISION_WHEELHOUSE" ] || die "wheelhouse $AGENTIC_VISION_WHEELHOUSE is not a directory"
    mkdir -p "$CTX/wheelhouse"
    cp -l "$AGENTIC_VISION_WHEELHOUSE"/* "$CTX/wheelhouse/" 2>/dev/null || cp "$AGENTIC_VISION_WHEELHOUSE"/* "$CTX/wheelhouse/"
    WHEEL_ARG=1
    log "installing from the wheelhouse $AGENTIC_VISION_WHEELHOUSE only ($(ls "$CTX/wheelhouse" | wc -l) files)"
fi

# --- 5. build ------------------------------------------------------------------------
# The Dockerfile needs no BuildKit feature.  With a Docker CLI that has no buildx
# plugin, DOCKER_BUILDKIT=1 would be an error, so use the classic builder then.
if docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-1}"
else
    export DOCKER_BUILDKIT=0
fi
NETWORK="${AGENTIC_VISION_BUILD_NETWORK:-host}"

log "building $IMAGE from $BASE (hash ${HASH:0:12}, network $NETWORK, BuildKit=$DOCKER_BUILDKIT) ..."
t=$(date +%s)
if ! docker build \
        -f "$CTX/Dockerfile.sandbox" \
        --network "$NETWORK" \
        --build-arg BASE_IMAGE="$BASE" \
        --build-arg SANDBOX_HASH="$HASH" \
        --build-arg WHEELHOUSE="$WHEEL_ARG" \
        -t "$IMAGE" \
        "$CTX" 2>&1 | sed -u 's/^/    /' >&2; then
    die "docker build of $IMAGE failed (output above)"
fi
log "built $IMAGE in $(elapsed "$t")"
# The build stage stays in Docker's build cache (untagged): a change to
# sandbox/*.py then rebuilds in seconds.  It holds the CA bundle copy (public
# certificates, not a secret) and nothing of it is in $IMAGE.

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
log "done: $IMAGE, $(( size / 1000 / 1000 )) MB, total $(elapsed "$t_all")"
