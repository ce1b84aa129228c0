#!/usr/bin/env bash
# Make a Docker Engine available on this machine, idempotently:
#  - installs docker.io (engine + a BuildKit-capable CLI) and debootstrap via apt when missing,
#  - starts dockerd in the background when nothing answers on the socket,
#  - waits until the engine answers.
# Used by .ci/run on a fresh machine and by developers; safe to run again and again.
set -euo pipefail

SOCK=${DOCKER_SOCK:-/var/run/docker.sock}
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_S=${DOCKERD_WAIT_S:-60}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

engine_answers() {
  # the Debian CLI lives in /usr/bin; a newer client elsewhere on PATH talks to the same socket
  docker -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

missing=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-docker: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if engine_answers; then
  echo "install-docker: engine already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

DOCKERD=$(command -v dockerd || echo /usr/sbin/dockerd)
echo "install-docker: starting $DOCKERD (log: $LOG)"
# setsid + nohup: the engine must outlive this script and the CI step that ran it
$SUDO setsid nohup "$DOCKERD" --host "unix://$SOCK" >"$LOG" 2>&1 < /dev/null &

for _ in $(seq 1 "$WAIT_S"); do
  if engine_answers; then
    echo "install-docker: engine ready ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "install-docker: dockerd did not answer on $SOCK within ${WAIT_S}s; last log lines:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1
