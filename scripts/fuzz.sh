#!/usr/bin/env bash
# Builds and runs GPT2Kit's libFuzzer harnesses (Fuzz/*.swift). Not part of the SwiftPM build or CI.
#
#   bash scripts/fuzz.sh [HARNESS|all|build] [--runs N] [--time SECONDS] [--build-only]
#       runs each harness for N executions or SECONDS, whichever comes first (neither given: 60 s)
#   bash scripts/fuzz.sh triage HARNESS   replays Fuzz/crashes/HARNESS/* and prints each one's innermost frames
#
# Harnesses: safetensors zip torch hdf5 config tokenizer jsonl gguf llmc adapter shards.
# Build output goes to .build-fuzz/ (git-ignored): instrumented modules in mods/, harness binaries in bin/,
# the growing corpus in corpus/<harness>/ and logs in logs/. Committed seeds are read from Fuzz/seeds/<harness>/
# (regenerate with `python3 Fuzz/make_seeds.py`); crashing, timing-out and out-of-memory inputs are kept in
# Fuzz/crashes/<harness>/. One harness runs at a time, single process (no -jobs/-workers).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build-fuzz
ALL=(safetensors zip torch hdf5 config tokenizer jsonl gguf llmc adapter shards)

target=all; runs=""; seconds=""; build_only=0; triage=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --time) seconds=$2; shift 2 ;;
        --build-only) build_only=1; shift ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        triage) triage=1; shift ;;
        *) target=$1; shift ;;
    esac
done
if [ -z "$runs" ] && [ -z "$seconds" ]; then seconds=60; fi
if [ "$target" = all ] || [ "$target" = build ]; then harnesses=("${ALL[@]}"); else harnesses=("$target"); fi
[ "$target" = build ] && build_only=1
for h in "${harnesses[@]}"; do
    [[ " ${ALL[*]} " == *" $h "* ]] || { echo "unknown harness '$h' (one of: ${ALL[*]}, all, build)" >&2; exit 2; }
done

pkg-config --exists hdf5 openblas zlib || { echo "missing system packages: run bash scripts/bootstrap.sh" >&2; exit 1; }
SWIFTC=${SWIFTC:-swiftc}
FLAGS=(-sanitize=fuzzer,address -parse-as-library -O -g -enable-testing -package-name GPT2Kit -I "$OUT/mods"
       -I Sources/CHDF5 -I Sources/CZlib -I Sources/CBLAS -I "$OUT/mods/CPosix")
for f in $(pkg-config --cflags-only-I hdf5 openblas zlib); do FLAGS+=(-Xcc "$f"); done
LIBS=()
for f in $(pkg-config --libs-only-L hdf5 openblas zlib); do LIBS+=("$f"); done
LIBS+=(-lhdf5 -lz -lopenblas)
mkdir -p "$OUT/mods" "$OUT/bin" "$OUT/logs"

# The C target CPosix (Linux calls Swift's Glibc module lacks): an instrumented object and a module map.
build_cposix() {
    local obj=$OUT/mods/CPosix.o
    if [ -f "$obj" ] && [ -z "$(find Sources/CPosix -newer "$obj" 2>/dev/null)" ]; then return; fi
    mkdir -p "$OUT/mods/CPosix"
    printf 'module CPosix {\n  header "%s"\n  export *\n}\n' "$ROOT/Sources/CPosix/include/CPosix.h" > "$OUT/mods/CPosix/module.modulemap"
    "${CLANG:-clang}" -fsanitize=address,fuzzer-no-link -O1 -g -c Sources/CPosix/CPosix.c -I Sources/CPosix/include -o "$obj"
}

# Rebuilds module $1 from Sources/$1 when any of its sources is newer than its last build
# (after changing the flags below, delete .build-fuzz/).
build_module() {
    # (swiftc keeps an unchanged object's old mtime, so a stamp file records when it last built.)
    local m=$1 obj=$OUT/mods/$1.o stamp=$OUT/mods/$1.stamp
    local srcs=(Sources/"$m"/*.swift)
    if [ -f "$stamp" ] && [ -z "$(find "${srcs[@]}" -newer "$stamp" 2>/dev/null)" ]; then return; fi
    echo "== module $m"
    "$SWIFTC" "${FLAGS[@]}" -wmo -module-name "$m" -emit-module -emit-module-path "$OUT/mods/$m.swiftmodule" \
        -c "${srcs[@]}" -o "$obj"
    touch "$stamp"
}

# Modules each harness links, and the Sources files compiled into the harness's own module.
modules_of() {
    case $1 in
        safetensors|zip|torch|hdf5) echo "Tensors Checkpoints" ;;
        config) echo "Tensors Kernels GPT2" ;;
        tokenizer) echo "Tokenization" ;;
        jsonl) echo "" ;;
        gguf|llmc|adapter|shards) echo "Tensors Kernels Checkpoints Tokenization GPT2 Optimization Training Generation GPT2Kit" ;;
    esac
}
extra_sources_of() {
    case $1 in
        config) echo "Sources/GPT2Kit/GenerationConfigFile.swift" ;;
        jsonl) echo "Sources/Training/TrainingData.swift" ;;
        *) echo "" ;;
    esac
}
file_of() {
    case $1 in
        safetensors) echo Fuzz/SafetensorsFuzzer.swift ;; zip) echo Fuzz/ZipFuzzer.swift ;;
        torch) echo Fuzz/TorchFuzzer.swift ;; hdf5) echo Fuzz/HDF5Fuzzer.swift ;;
        config) echo Fuzz/ConfigFuzzer.swift ;; tokenizer) echo Fuzz/TokenizerFuzzer.swift ;;
        jsonl) echo Fuzz/JSONLFuzzer.swift ;;
        gguf) echo Fuzz/GGUFFuzzer.swift ;; llmc) echo Fuzz/LLMCFuzzer.swift ;; adapter) echo Fuzz/AdapterFuzzer.swift ;;
        shards) echo Fuzz/ShardFuzzer.swift ;;
    esac
}
max_len_of() {
    case $1 in
        safetensors) echo 4096 ;; zip) echo 8192 ;; torch) echo 8192 ;; hdf5) echo 16384 ;;
        config) echo 2048 ;; tokenizer) echo 16384 ;; jsonl) echo 4096 ;;
        gguf) echo 40000 ;; llmc) echo 16384 ;; adapter) echo 4096 ;; shards) echo 4096 ;;
    esac
}

build_harness() {
    local h=$1 bin=$OUT/bin/fuzz-$1 objs=() m
    build_cposix
    objs+=("$OUT/mods/CPosix.o")
    for m in $(modules_of "$h"); do build_module "$m"; objs+=("$OUT/mods/$m.o"); done
    local srcs=("$(file_of "$h")" Fuzz/FuzzSupport.swift $(extra_sources_of "$h"))
    local stamps=()
    for m in $(modules_of "$h"); do stamps+=("$OUT/mods/$m.stamp"); done
    if [ -f "$bin" ] && [ -z "$(find "${srcs[@]}" "${stamps[@]}" -newer "$bin" 2>/dev/null)" ]; then return; fi
    echo "== harness $h"
    # ld.gold warns once per ASan helper symbol ("Cannot export local symbol"); keep the rest.
    "$SWIFTC" "${FLAGS[@]}" -module-name "Fuzz_$h" "${srcs[@]}" "${objs[@]}" "${LIBS[@]}" -o "$bin" 2>&1 \
        | { grep -v "Cannot export local symbol" || true; }
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "building harness $h failed" >&2; exit 1; }
}

# Crashing inputs go to Fuzz/crashes/<harness>/ (libFuzzer names them crash-*, timeout-*, oom-*, leak-*).
run_harness() {
    local h=$1 bin=$OUT/bin/fuzz-$1 corpus=$OUT/corpus/$1 crashes=$ROOT/Fuzz/crashes/$1 log=$OUT/logs/$1.log
    mkdir -p "$corpus" "$crashes"
    local args=(-max_len="$(max_len_of "$h")" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
                -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$crashes/")
    [ -f "Fuzz/dicts/$h.dict" ] && args+=(-dict="Fuzz/dicts/$h.dict")
    # libhdf5 itself crashes on some hostile files (its own bug, isolated elsewhere): run the hdf5 harness in
    # libFuzzer's fork mode with one child at a time, so it keeps going and keeps every crasher for triage
    # (bash scripts/fuzz.sh triage hdf5 replays them and tells libhdf5 frames from ours).
    # Its timeouts are libhdf5 looping on a corrupt heap; a valid tiny file reads in milliseconds, so 3 s.
    [ "$h" = hdf5 ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -timeout=3)
    if [ -n "$runs" ]; then args+=(-runs="$runs"); fi
    if [ -n "$seconds" ]; then args+=(-max_total_time="$seconds"); fi
    local seeds=()
    [ -d "Fuzz/seeds/$h" ] && seeds+=("Fuzz/seeds/$h")
    echo "== fuzz $h (${runs:+$runs runs}${runs:+${seconds:+, }}${seconds:+at most $seconds s}) log: $log"
    local start=$SECONDS status=0
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=0} \
        GPT2KIT_FUZZ_TMP=${GPT2KIT_FUZZ_TMP:-} "$bin" "${args[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1 || status=$?
    rm -f "${GPT2KIT_FUZZ_TMP:-/dev/shm}"/gpt2kit-fuzz-"$h".* 2>/dev/null || true
    echo "$h $status $((SECONDS - start))" >> "$OUT/logs/summary.txt"
    if [ $status -ne 0 ]; then
        echo "   harness $h stopped with status $status; see $log and $crashes/"
        grep -m 3 -E "ERROR: |Fatal error|SUMMARY|Test unit written" "$log" | sed 's/^/   /' || true
    fi
}

summary() {
    printf '\n%-12s %12s %8s %8s %7s %s\n' harness executions cov ft seconds status
    local h
    for h in "${harnesses[@]}"; do
        local log=$OUT/logs/$h.log
        [ -f "$log" ] || continue
        local execs cov ft line secs status
        # (fork mode, used for hdf5, prints no final stats; its last "#N: cov: … ft: …" line has the figures)
        execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
        line=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
        [ -z "$execs" ] && execs=$(echo "$line" | sed -E 's/^#([0-9]+).*/\1/')
        cov=$(echo "$line" | sed -E 's/.*cov: ([0-9]+).*/\1/')
        ft=$(echo "$line" | sed -E 's/.*ft: ([0-9]+).*/\1/')
        secs=$(grep "^$h " "$OUT/logs/summary.txt" | tail -1 | awk '{print $3}' || true)
        status=$(grep "^$h " "$OUT/logs/summary.txt" | tail -1 | awk '{print $2}' || true)
        local verdict="FAILED ($status)"
        [ "${status:-1}" = 0 ] && verdict=ok
        # Fork mode exits non-zero when it ignored crashes; those are libhdf5's unless triage says otherwise.
        [ "$h" = hdf5 ] && [ "${status:-1}" != 0 ] && verdict="crashers kept in Fuzz/crashes/hdf5 (run: bash scripts/fuzz.sh triage hdf5)"
        printf '%-12s %12s %8s %8s %7s %s\n' "$h" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${secs:-?}" "$verdict"
    done
}

for h in "${harnesses[@]}"; do build_harness "$h"; done
# HDF5 seeds are made by our own writer inside the hdf5 harness (see Fuzz/HDF5Fuzzer.swift).
if [[ " ${harnesses[*]} " == *" hdf5 "* ]] && [ -z "$(ls -A Fuzz/seeds/hdf5 2>/dev/null)" ]; then
    mkdir -p Fuzz/seeds/hdf5
    GPT2KIT_FUZZ_WRITE_SEEDS=$ROOT/Fuzz/seeds/hdf5 ASAN_OPTIONS=detect_leaks=0 "$OUT/bin/fuzz-hdf5"
fi
[ $build_only = 1 ] && exit 0
if [ $triage = 1 ]; then
    for h in "${harnesses[@]}"; do
        for f in Fuzz/crashes/"$h"/*; do
            [ -f "$f" ] || continue
            echo "== $f"
            SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 timeout -s INT 60 "$OUT/bin/fuzz-$h" -timeout=10 \
                -rss_limit_mb=2048 -malloc_limit_mb=1024 "$f" 2>&1 \
                | grep -E "^ +#[0-9]+ |ERROR: |Fatal error|==ERROR" \
                | grep -v -E "sanitizer_|fuzzer::|libc\.so|compiler-rt" | head -8 || true
        done
    done
    exit 0
fi
for h in "${harnesses[@]}"; do run_harness "$h"; done
summary
