#!/usr/bin/env bash
#===- install-deps.sh - install MixQ's Debian build and test dependencies -===#
#
# Idempotent: installs only the packages that are missing, and does nothing
# (no apt-get at all) when everything is already there. Needs root (or sudo)
# on Debian 12 when something is missing.
#
# Set MIXQ_WITH_TORCH=0 to skip LibTorch (TorchScript import is optional).
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build ccache python3 git
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  libeigen3-dev libsentencepiece-dev libsqlite3-dev libpq-dev postgresql
  libgtest-dev libgmock-dev libbenchmark-dev libopenblas-dev
  clang libclang-rt-14-dev
  libzstd-dev zlib1g-dev libxml2-dev libedit-dev libffi-dev
)
if [ "${MIXQ_WITH_TORCH:-1}" != 0 ]; then
  pkgs+=(libtorch-dev python3-torch) # python3-torch: bench/runtime peer only
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
