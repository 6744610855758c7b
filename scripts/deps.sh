#!/usr/bin/env bash
# scripts/deps.sh: installs, only when missing, the Debian packages remat's build and tests need.
# Idempotent and quiet when nothing is missing. Set REMAT_DEPS_EXTRA="pkg ..." to add packages.
set -euo pipefail

packages=(build-essential pkg-config libjemalloc-dev libcriterion-dev libbenchmark-dev
          libopenblas-dev libxsmm-dev libcjson-dev gnuplot-nox clang libclang-rt-14-dev libomp-dev valgrind
          python3-torch python3-pytest python3-setuptools python3-pip libopenmpi-dev openmpi-bin
          ${REMAT_DEPS_EXTRA:-})
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/deps.sh: missing packages: ${missing[*]}" >&2
    echo "run as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "scripts/deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
