#!/usr/bin/env bash
# Build the sandbox image agentic-vision/sandbox:latest from Dockerfile.sandbox.
#
#   scripts/build-sandbox-image.sh               # start Docker if needed, build unless current
#   scripts/build-sandbox-image.sh --force       # build even if the image is current
#   scripts/build-sandbox-image.sh --print-hash  # print the source hash and exit
#
# Starts the local engine when none answers (scripts/start-docker.sh), then
# runs `agentic-vision sandbox build`, which does the rest through the Engine
# API (no docker CLI): choose the base image (python:3.11-slim when present or
# pullable, else the local Debian image that scripts/make-base-image.sh makes
# with debootstrap), send a small build context (Dockerfile.sandbox, sandbox/,
# the CA bundle, an optional wheelhouse), build.  The build is skipped when the
# image already carries the current source hash and base image in its labels.
#
# Source files and hash (label org.agentic-vision.sandbox.hash): defined once, in
# agentic_vision/sandboxing/image_source.py (run here with python3; the Docker
# executor imports it to tell a stale image).
#
# Environment:
#   AGENTIC_VISION_IMAGE        tag to build (default agentic-vision/sandbox:latest)
#   AGENTIC_VISION_BASE_IMAGE   base image to use; if it is agentic-vision/base:* and
#                               missing it is made with make-base-image.sh
#   AGENTIC_VISION_NO_PULL=1    don't try to pull python:3.11-slim
#   AGENTIC_VISION_BUILD_CA     CA bundle for pip inside the build (default: pip's
#                               cert setting, PIP_CERT, REQUESTS_CA_BUNDLE,
#                               SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt);
#                               "none" to use the image's own (certifi) roots
#   AGENTIC_VISION_WHEELHOUSE   a directory of wheels (pip wheel -r sandbox/requirements.txt
#                               -w DIR, made with CPython 3.11 on linux x86_64): install
#                               from it alone (--no-index), no index needed
#   AGENTIC_VISION_BUILD_NETWORK  network of the build's RUN steps (default host: needs
#                               neither NAT nor a resolver reachable from a bridge)
#   DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_CONTEXT: the engine to build on
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${AGENTIC_VISION_IMAGE:-agentic-vision/sandbox:latest}"
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

die() { printf '[build-sandbox-image] ERROR: %s\n' "$*" >&2; exit 1; }

IMAGE_SOURCE="$REPO/agentic_vision/sandboxing/image_source.py"
HASH="$(python3 "$IMAGE_SOURCE" "$REPO")" || die "cannot hash the sandbox sources (is python3 installed?)"
if [ "$PRINT_HASH" = 1 ]; then
    echo "$HASH"
    exit 0
fi

# --- 1. engine (the local one, started if needed; a remote one must be up) -------
if [ -z "${DOCKER_HOST:-}" ] && [ -z "${DOCKER_CONTEXT:-}" ]; then
    "$REPO/scripts/start-docker.sh"
fi

# --- 2. the build, through the Engine API -----------------------------------------
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || PY=python3
"$PY" -c 'import agentic_vision, docker' 2>/dev/null \
    || die "$PY cannot import agentic_vision and docker: run scripts/bootstrap.sh first"
args=(); [ "$FORCE" = 1 ] && args+=(--force)
AGENTIC_VISION_DOCKER_IMAGE="$IMAGE" PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
    exec "$PY" -m agentic_vision sandbox build "${args[@]}"
