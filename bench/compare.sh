#!/usr/bin/env bash
# Runs satclip-bench and the independent PyTorch implementation (bench/pytorch_reference.py) in
# one go, on the same number of threads, and prints them side by side.
#   bench/compare.sh [--quick] [--towers] [--threads N]
# The first run creates bench/.venv and installs torch and numpy from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=$(nproc)
quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick+=(--quick) ;;
    --towers) quick+=(--towers) ;;
    --threads) threads="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet torch numpy timm
fi
mkdir -p bench/results
cargo build --release -q -p satclip-bench
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
# Interleave the two, twice, so that machine noise spreads over both.
for round in 1 2; do
  ./target/release/satclip-bench --json "${quick[@]}" > "bench/results/ours.$round.json"
  bench/.venv/bin/python bench/pytorch_reference.py --threads "$threads" "${quick[@]}" > "bench/results/torch.$round.json"
done
bench/.venv/bin/python - <<'PY'
import json, statistics
ours = [json.load(open(f"bench/results/ours.{r}.json")) for r in (1, 2)]
torch = [json.load(open(f"bench/results/torch.{r}.json")) for r in (1, 2)]
print(f"threads: {ours[0]['threads']}, torch {torch[0]['torch']}, f32 GEMM peak {ours[0]['gemm_peak_gflops']:.0f} GFLOP/s, peak RSS (ours) {ours[0]['peak_rss_mb']:.0f} MB")
print("| workload | satclip-rs | PyTorch | ratio (higher = satclip-rs faster) |")
print("|---|---|---|---|")
for key in ours[0]:
    if not key.startswith(("embed_", "geoclip_", "train_", "tower_")):
        continue
    o = statistics.median(r[key] for r in ours)
    t = statistics.median(r[key] for r in torch)
    if key.startswith("tower_"):
        print(f"| {key} | {o:,.1f} tiles/s | {t:,.1f} tiles/s | {o / t:.2f}x |")
    elif key.startswith(("embed_", "geoclip_")):
        print(f"| {key} | {o:,.0f} points/s | {t:,.0f} points/s | {o / t:.2f}x |")
    else:
        print(f"| {key} | {o:.3f} s/step | {t:.3f} s/step | {t / o:.2f}x |")
PY
