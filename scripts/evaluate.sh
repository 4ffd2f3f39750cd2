#!/usr/bin/env bash
# The full evaluation suite in one command: installs the open data, builds the nine tasks and
# probes every encoder on them. Writes into OUT_DIR (default eval-results):
#   tasks/*.csv                 the task files
#   ridge-random.{json,md}      ridge, random split (half held out), all training labels
#   ridge-block.{json,md}       ridge, whole 10° cells held out
#   knn-block.{json,md}         kNN, whole 10° cells held out (interpolation across gaps)
#   ridge-continent.{json,md}   ridge, each continent (Natural Earth) held out in turn
#   ridge-continent-blocks.{json,md}  the same, the ridge strength chosen in 20° blocks
#   learning-curve.{json,md}    ridge, random split, 100 / 300 / 1000 / all training labels
#   probes.{json,md}            logistic (classes), MLP and kNN, random split
#   finetune-{random,continent}.{json,md}  the SatCLIP encoders fine-tuned end to end, beside
#                               their ridge probe (the other encoders cannot be fine-tuned)
#   finetune-continent-blocks.{json,md}  the same holdout, ridge and the epoch chosen in 20° blocks
#   latent/biome-*.png          t-SNE of each encoder's embeddings of the biome points
#   latent.txt                  their kNN and logistic separability of biomes
#   timings.txt                 wall time of each step
# The station, county and ecoregion tasks and the two fixture checkpoints come from
# $SATCLIP_SHARED (default ../shared) when it has them; without it those are skipped.
# Usage: scripts/evaluate.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-eval-results}"
shared="${SATCLIP_SHARED:-../shared}"
export SATCLIP_DATA="${SATCLIP_DATA:-data}"
mkdir -p "$out"
bash scripts/install-data.sh "$SATCLIP_DATA"
cargo build --release -p satclip-cli
satclip=target/release/satclip
: > "$out/timings.txt"
timed() {
  local name=$1
  shift
  local start=$SECONDS
  "$@"
  echo "$name: $((SECONDS - start)) s" | tee -a "$out/timings.txt"
}

shared_data=()
if [ -d "$shared/data" ]; then shared_data=(--data "$shared/data"); fi
timed tasks "$satclip" tasks build "${shared_data[@]}" --out "$out/tasks"
tasks=()
for name in air_temperature precipitation median_income california_housing elevation population_density \
  country biome ecoregion; do
  if [ -e "$out/tasks/$name.csv" ]; then tasks+=(--task "$out/tasks/$name.csv"); fi
done
encoders=(--encoder direct --encoder wrap --encoder cartesian3d --encoder sh-l10 --encoder sh-l40 \
  --encoder geoclip --encoder default)
fixture_encoders=()
for model in resnet18-l10 vit16-l40; do
  ckpt="$shared/fixtures/satclip-$model.ckpt"
  if [ -e "$ckpt" ]; then
    encoders+=(--encoder "fixture-$model=$ckpt")
    fixture_encoders+=("fixture-$model=$ckpt")
  fi
done
probe() {
  local name=$1
  shift
  timed "$name" "$satclip" eval "${tasks[@]}" "${encoders[@]}" --summary --output "$out/$name.json" "$@" \
    > "$out/$name.md"
}
probe ridge-random --probe ridge
probe ridge-block --probe ridge --split block
probe knn-block --probe knn --split block
probe ridge-continent --probe ridge --split continent
probe ridge-continent-blocks --probe ridge --split continent --cv-blocks 20
probe learning-curve --probe ridge --n-train 100 --n-train 300 --n-train 1000 --n-train all
probe probes --probe logistic --probe mlp --probe knn
finetune() {
  local split
  for split in random continent; do
    "$satclip" eval "${tasks[@]}" --encoder default "${fixture_encoders[@]/#/--encoder=}" --probe ridge \
      --probe finetune --split "$split" --summary --output "$out/finetune-$split.json" > "$out/finetune-$split.md"
  done
  "$satclip" eval "${tasks[@]}" --encoder default "${fixture_encoders[@]/#/--encoder=}" --probe ridge \
    --probe finetune --split continent --cv-blocks 20 --summary --output "$out/finetune-continent-blocks.json" \
    > "$out/finetune-continent-blocks.md"
}
timed finetune finetune
latent() {
  mkdir -p "$out/latent"
  : > "$out/latent.txt"
  for encoder in default geoclip sh-l10 "${fixture_encoders[@]}"; do
    "$satclip" latent --task "$out/tasks/biome.csv" --encoder "$encoder" \
      --out "$out/latent/biome-${encoder%%=*}.png" >> "$out/latent.txt"
  done
}
if [ -e "$out/tasks/biome.csv" ]; then timed latent latent; fi
echo "total: $SECONDS s" | tee -a "$out/timings.txt"
