#!/usr/bin/env bash
# Generates the API reference of the GPT2Kit library (DocC, swift-docc-plugin) into .build/docs.
# Static hosting: add --transform-for-static-hosting (see `swift package plugin generate-documentation --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=${1:-.build/docs}
targets=()
for t in GPT2Kit GPT2 Training Generation Tokenization Checkpoints Tensors Optimization; do targets+=(--target "$t"); done
# One combined archive: the facade's page and a page per re-exported module, linked together.
swift package --allow-writing-to-directory "$out" generate-documentation "${targets[@]}" \
    --enable-experimental-combined-documentation --output-path "$out" --disable-indexing
echo "API reference written to $out"
