#!/usr/bin/env bash
# The main job on the bundled tiny GPT-2: the transformers notebook, done by gpt2kit.
# tokenize -> eval -> fine-tune (20 AdamW steps) -> export to every format (GGUF too) -> greedy and sampled generation
# -> the same fine-tuning as a LoRA adapter (PEFT format).
# Usage: bash scripts/demo.sh [MODEL_DIR] [TOKENIZER_DIR]
#   defaults: fixtures/tiny-gpt2 (random weights, real vocabulary, GPT-2's tokenizer files in the folder), and the
#   model folder's own tokenizer. With a real gpt2 folder: bash scripts/demo.sh /path/to/gpt2   (then LR defaults to 5e-4)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
MODEL=${1:-fixtures/tiny-gpt2}
# The model folder's tokenizer unless another folder is named (the commands then get --tokenizer).
TOKENIZER=${2:-$MODEL}
TOKENIZER_OPTION=()
if [ -n "${2:-}" ]; then TOKENIZER_OPTION=(--tokenizer "$2"); fi
# The tiny random model needs the larger step to memorise the label in 20 steps; the real gpt2 uses the notebook's 5e-4.
if [ "$MODEL" = "fixtures/tiny-gpt2" ]; then LR=${LR:-1e-2}; else LR=${LR:-5e-4}; fi
OUT=${OUT:-runs/demo}
CONTEXT="Harry Potter is a series of"
LABEL="seven fantasy novels"

echo "== building (release)"
BUILD_LOG=$(mktemp)
if swift build -c release --product gpt2kit >"$BUILD_LOG" 2>&1; then
  tail -1 "$BUILD_LOG"
else
  # Show the compiler's error lines and the end of the log, not just its last line.
  echo "error: swift build failed; its errors and last 40 lines (full log: $BUILD_LOG):" >&2
  grep -E "error:" "$BUILD_LOG" | head -20 >&2 || true
  echo "--" >&2
  tail -40 "$BUILD_LOG" >&2
  exit 1
fi
rm -f "$BUILD_LOG"
BIN=$(swift build -c release --show-bin-path)/gpt2kit

echo "== the model"
"$BIN" inspect "$MODEL" | tail -4
echo "== tokenize"
echo -n "context: "; "$BIN" tokenize --tokenizer "$TOKENIZER" "$CONTEXT"
echo -n "label:   "; "$BIN" tokenize --tokenizer "$TOKENIZER" "$LABEL"
echo "== loss of the label before fine-tuning"
"$BIN" eval --model "$MODEL" ${TOKENIZER_OPTION[@]+"${TOKENIZER_OPTION[@]}"} --context "$CONTEXT" --label "$LABEL"
echo "== greedy continuation before fine-tuning"
"$BIN" generate --model "$MODEL" ${TOKENIZER_OPTION[@]+"${TOKENIZER_OPTION[@]}"} --prompt "$CONTEXT" --max-new-tokens 3
echo "== fine-tune: 20 AdamW steps, lr $LR, eps 1e-6 (the notebook's optimizer), labels of the context masked to -100"
rm -rf "$OUT"
"$BIN" finetune --model "$MODEL" ${TOKENIZER_OPTION[@]+"${TOKENIZER_OPTION[@]}"} --context "$CONTEXT" --label "$LABEL" \
  --steps 20 --lr "$LR" --eps 1e-6 --out "$OUT/hp"
echo "== export to PyTorch (.bin) and TF/Keras (tf_model.h5)"
"$BIN" convert "$OUT/hp" "$OUT/hp-pytorch" --format pytorch
"$BIN" convert "$OUT/hp" "$OUT/hp-tf" --format h5
echo "== greedy continuation after fine-tuning (from the .bin export)"
"$BIN" generate --model "$OUT/hp-pytorch" --prompt "$CONTEXT" --max-new-tokens 3
echo "== sampled continuations (top-k 10, top-p 0.75, from the TF export)"
"$BIN" generate --model "$OUT/hp-tf" --prompt "$CONTEXT" --sample --max-length 10 --top-k 10 --top-p 0.75 \
  --num-return-sequences 3 --seed 0
echo "== export to GGUF (llama.cpp, q8_0, tokenizer embedded) and greedy from it"
"$BIN" convert "$OUT/hp" "$OUT/hp-q8_0.gguf" --dtype q8_0
"$BIN" generate --model "$OUT/hp-q8_0.gguf" --prompt "$CONTEXT" --max-new-tokens 3
echo "== the same with LoRA: a PEFT adapter (r 8 on c_attn, c_proj, c_fc), the base stays frozen"
"$BIN" finetune --model "$MODEL" ${TOKENIZER_OPTION[@]+"${TOKENIZER_OPTION[@]}"} --context "$CONTEXT" --label "$LABEL" \
  --steps 20 --lr "$LR" --eps 1e-6 --lora-rank 8 --lora-alpha 16 --lora-targets c_attn,c_proj,c_fc --out "$OUT/lora"
"$BIN" generate --model "$MODEL" ${TOKENIZER_OPTION[@]+"${TOKENIZER_OPTION[@]}"} --adapter "$OUT/lora" --prompt "$CONTEXT" --max-new-tokens 3
echo "== done: $OUT/hp (safetensors + trainer_state + loss_curve.svg), $OUT/hp-pytorch, $OUT/hp-tf, $OUT/hp-q8_0.gguf, $OUT/lora (PEFT adapter)"
