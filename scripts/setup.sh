#!/usr/bin/env bash
# Installs what the platform needs into ./.venv (idempotent; quick when already done).
#   scripts/setup.sh          the platform and its model runner
#   scripts/setup.sh --test   plus the test tools, the Docker Engine and Chromium
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# The unit suite also runs on the lowest Python pyproject.toml admits (requires-python >=3.11): Debian bookworm's
# python3, 3.11.2, which the platform image and the bootstrapped app images run on (tarfile's extraction filters,
# for one, only arrived in 3.11.4). Its own venv, .venv-lowest, with the test extra; quick when present, and cheap
# when not (the same cp311 wheels .venv just put in uv's cache).
lowest_python() {
  local python=${SPACES_LOWEST_PYTHON:-/usr/bin/python3}
  if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    echo "setup: $python is not a Python 3.11 (the lowest pyproject.toml admits); install Debian's python3" \
         "(bookworm) or set SPACES_LOWEST_PYTHON to a 3.11 interpreter" >&2
    return 1
  fi
  [ -x .venv-lowest/bin/python ] || "$UV" venv --quiet -p "$python" .venv-lowest
  VIRTUAL_ENV=.venv-lowest "$UV" pip install --quiet -e ".[test]"
}

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet uv
fi
UV=$(command -v uv)
[ -x .venv/bin/python ] || "$UV" venv --quiet -p 3.11 .venv

# torch==2.13.0 (CPU) lies on this kind of machine's disk; uv looks there only when told.
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)
extras="runner"
[ "$want_test" = 1 ] && extras="runner,test"
VIRTUAL_ENV=.venv "$UV" pip install --quiet "${links[@]}" -e ".[$extras]"

# the app sandbox (spaces_runtime.sandbox) runs every app under Debian's bubblewrap, in a network namespace wired
# with iproute2 and firewalled with iptables, under a seccomp filter libseccomp compiles (pyseccomp loads
# libseccomp.so.2); `spaces doctor` checks the rest
sandbox_missing=()
command -v bwrap >/dev/null 2>&1 || sandbox_missing+=(bubblewrap)
[ -n "$(/sbin/ldconfig -p 2>/dev/null | grep 'libseccomp\.so\.2 ')" ] || sandbox_missing+=(libseccomp2)
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || sandbox_missing+=(iptables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || sandbox_missing+=(iproute2)
if [ ${#sandbox_missing[@]} -gt 0 ]; then
  echo "setup: installing Debian's ${sandbox_missing[*]} (the app sandbox)" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${sandbox_missing[@]}" >/dev/null
fi

if [ "$want_test" = 1 ]; then
  if [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing Debian's chromium (browser tests)" >&2
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji >/dev/null
  fi
  if ! command -v git-lfs >/dev/null 2>&1; then
    echo "setup: installing Debian's git-lfs (git hosting tests push LFS files as a Space's author would)" >&2
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq git-lfs >/dev/null
  fi
  if [ ! -x /usr/bin/docker-registry ]; then
    echo "setup: installing Debian's docker-registry (the swarm backend's image registry; tests/swarm)" >&2
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq docker-registry >/dev/null
  fi
  bash scripts/install-docker.sh
  lowest_python
fi
