#!/usr/bin/env bash
# Runs the whole test suite: installs missing system libraries, builds, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
swift build --build-tests
# One test at a time: kernels set OpenBLAS's process-wide thread count around their parallel regions, so tests
# running side by side in one process can shift each other's last bits, and a few goldens check quantities whose
# exact value is rounding noise (see FinetuneGoldenTests). A run of the product trains one model at a time.
swift test --skip-build --no-parallel "$@"
