#!/usr/bin/env bash
# Sets up everything agentic-vision needs on this machine, once; later calls
# return at once.  Installs bubblewrap (Debian/Ubuntu), makes .venv with the
# package, and builds the local sandbox's environment (Gemini's library list).
#   EXTRAS=test scripts/bootstrap.sh   also installs the test dependencies
#   scripts/bootstrap.sh --venv-only    only .venv (./av: the command itself
#                                       sets the sandbox up once the API key
#                                       and the model name are checked)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${EXTRAS:-}"
say() { echo "[setup] $*" >&2; }

# bubblewrap runs the local sandbox; libseccomp compiles its system-call filter
# (through pyseccomp); setpriv and unshare (util-linux) drop root before it.
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
{ ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libseccomp\.so\.2' >/dev/null || need+=(libseccomp2)
{ command -v setpriv && command -v unshare; } >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
  else
    say "missing: install ${need[*]} with your package manager"; exit 3
  fi
fi

python="${PYTHON:-python3}"
# The stamp is the project file's hash and the extras installed with it; a
# venv with the test extras also serves a plain run, so ./av and the tests
# do not reinstall each other's venv.
hash="$(sha256sum pyproject.toml | cut -c1-16)"
have_hash="" have_extras=""
# (Tested first: a failed `<` redirection prints its error before `2>` applies.)
if [ -f .venv/.agentic-vision-stamp ]; then
  read -r have_hash have_extras < .venv/.agentic-vision-stamp || true
fi
if [ ! -x .venv/bin/agentic-vision ] || [ "${have_hash:-}" != "$hash" ] || { [ -n "$extras" ] && [ "${have_extras:-}" != "$extras" ]; }; then
  say "creating .venv"
  "$python" -m venv .venv
  spec="."; [ -n "$extras" ] && spec=".[$extras]"
  .venv/bin/pip install -q --disable-pip-version-check -e "$spec"
  echo "$hash ${extras}" > .venv/.agentic-vision-stamp
fi

[ "${1:-}" = "--venv-only" ] && exit 0
# Prints a line only when it has work to do.
.venv/bin/agentic-vision sandbox setup --quiet
