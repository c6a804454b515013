#!/usr/bin/env bash
# Installs the system libraries GPT2Kit links against when they are missing (Debian/Ubuntu, needs root or sudo).
set -euo pipefail
missing=()
pkg-config --exists openblas 2>/dev/null || missing+=(libopenblas-dev)
pkg-config --exists hdf5 2>/dev/null || missing+=(libhdf5-dev)
pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
# Open MPI: gpt2kit-mpi links libmpi (pkg-config ompi-c); the MPI tests run mpirun. gpt2kit itself never needs it.
pkg-config --exists ompi-c 2>/dev/null || missing+=(libopenmpi-dev)
command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" pkg-config >&2
fi
command -v swift >/dev/null 2>&1 || { echo "bootstrap: swift (6.x) is not on PATH; install the Swift toolchain first" >&2; exit 1; }
