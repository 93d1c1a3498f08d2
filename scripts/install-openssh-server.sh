#!/usr/bin/env bash
# Installs openssh-server (for the Docker-over-ssh tests, which run their own
# sshd on loopback) without starting the system's ssh service: a policy-rc.d
# denies service starts during the install, and an sshd the package started
# anyway is stopped.  Quiet; exits non-zero when it cannot install it.
set -euo pipefail
if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "[setup] no apt-get: cannot install openssh-server" >&2; exit 1; }
sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
echo "[setup] installing openssh-server for the Docker-over-ssh tests (its service is not started)" >&2
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  # invoke-rc.d and deb-systemd-invoke ask this before starting a service: 101 = denied.
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
  $sudo_cmd chmod 755 "$policy"
  ours=1
fi
log=$(mktemp)
cleanup() { if [ -n "$ours" ]; then $sudo_cmd rm -f "$policy"; fi; rm -f "$log"; }
trap cleanup EXIT
{ $sudo_cmd env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get update -qq &&
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 \
    apt-get install -y -qq --no-install-recommends openssh-server; } </dev/null >"$log" 2>&1 ||
  { tail -n 20 "$log" >&2; exit 1; }
# Belt and braces: nothing of the system's ssh service stays running (port 22).
if [ -s /run/sshd.pid ]; then
  $sudo_cmd kill "$(cat /run/sshd.pid)" 2>/dev/null || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo_cmd systemctl stop ssh.service ssh.socket 2>/dev/null || true
fi
