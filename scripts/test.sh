#!/usr/bin/env bash
# One command: set up (bubblewrap, .venv, sandbox environment, Docker engine
# and sandbox image) and run the whole test suite.  Extra arguments go to pytest.
# AGENTIC_VISION_TEST_STRICT=1 (CI, .ci/run): a part that cannot be installed stops
# here, and a test whose real part is missing fails instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
strict="${AGENTIC_VISION_TEST_STRICT:-0}"
# missing WHAT: stop under strict mode, else say which tests will be skipped.
missing() {
  if [ "$strict" = 1 ]; then
    echo "[setup] AGENTIC_VISION_TEST_STRICT=1: could not install $1" >&2
    exit 1
  fi
  echo "[setup] could not install $1: $2 will be skipped" >&2
}
EXTRAS=test scripts/bootstrap.sh
if [ "${AGENTIC_VISION_TEST_DOCKER:-auto}" != 0 ] && [ -x scripts/build-sandbox-image.sh ]; then
  # Docker tests run against a real engine; without one they are skipped
  # unless AGENTIC_VISION_TEST_DOCKER=1 or strict mode makes that a failure.
  if ! scripts/build-sandbox-image.sh; then
    [ "${AGENTIC_VISION_TEST_DOCKER:-auto}" != 1 ] || { echo "[setup] no Docker engine or sandbox image" >&2; exit 1; }
    missing "the Docker engine or the sandbox image" "the Docker tests"
  fi
fi
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Node.js for the JavaScript SDK tests" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq nodejs npm >/dev/null; } ||
    missing "Node.js" "the JavaScript SDK tests"
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  # The gateway is also tested with the @google/genai JavaScript SDK, pinned by tests/js/package-lock.json.
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error) || missing "the JavaScript SDK (npm ci in tests/js)" "the JavaScript SDK tests"
  export AGENTIC_VISION_TEST_JS=1
elif [ "$strict" = 1 ]; then
  missing "Node.js and npm" "the JavaScript SDK tests"
fi
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  # The bench's report.html is checked by a screenshot in headless Chromium.
  echo "[setup] installing Chromium for the report.html screenshot test" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq chromium >/dev/null; } ||
    missing "Chromium" "the report.html and evidence-map screenshot tests"
fi
if [ "${AGENTIC_VISION_TEST_DOCKER:-auto}" != 0 ]; then
  # The Docker-over-ssh tests run their own sshd on loopback; without one they are skipped.
  scripts/install-openssh-server.sh || missing "openssh-server" "the Docker-over-ssh tests"
fi
exec .venv/bin/python -m pytest "$@"
