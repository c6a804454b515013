#!/usr/bin/env bash
# Step time of GPT-2 124M (random weights, random text) on 1 process vs N processes of gpt2kit-mpi, and the
# gradient all-reduce alone. Usage: scripts/mpi-benchmark.sh [processes=2] [global batch=2] [block=256] [steps=4]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2}; B=${2:-2}; T=${3:-256}; STEPS=${4:-4}
[ $((B % N)) -eq 0 ] || { echo "the global batch $B does not split over $N processes" >&2; exit 1; }
swift build -c release --product gpt2kit-mpi >&2
BIN=.build/release/gpt2kit-mpi
ROOT=$([ "$(id -u)" -eq 0 ] && echo --allow-run-as-root || true)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$BIN init --preset gpt2 --out "$W/gpt2" >&2
cp fixtures/gpt2-tokenizer/* "$W/gpt2/"
for i in $(seq 1 30000); do printf 'w%d ' $((RANDOM % 3000)); done > "$W/random.txt"
run() {  # processes, per-process batch, extra mpirun flags
  rm -rf "$W/out"
  mpirun $ROOT --oversubscribe -np "$1" ${3:-} $BIN finetune --model "$W/gpt2" --data "$W/random.txt" --block-size "$T" \
      --steps "$STEPS" --batch-size "$2" --lr 1e-4 --dropout 0 --out "$W/out" --json 2>/dev/null |
    awk -v np="$1" -v b="$2" -v t="$T" '/^\{/ { n++; if (n > 1) { match($0, /"tokens_per_s":[0-9.e+-]+/); tps = substr($0, RSTART + 15, RLENGTH - 15);
      s += np * b * t / tps; c++; if (match($0, /"communication_s":[0-9.e+-]+/)) { cm += substr($0, RSTART + 18, RLENGTH - 18) } } }
      END { printf "%d process(es) x batch %d x %d tokens: %.2f s/step (mean of steps 2..%d), of which %.3f s in the all-reduces\n", np, b, t, s / c, n, cm / c }'
}
run 1 "$B" "--bind-to none"
run "$N" $((B / N))
mpirun $ROOT --oversubscribe -np "$N" $BIN allreduce-benchmark --repeats 5
