#!/usr/bin/env bash
# Runs satclip-bench, the independent PyTorch implementation (bench/pytorch_reference.py) and the
# practical limit (bench/numpy_limit.py: numpy + OpenBLAS on the SIREN's products alone) in one go,
# on the same number of threads, and prints them side by side.
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
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
# Interleave the two, twice, so that machine noise spreads over both.
for round in 1 2; do
  ./target/release/satclip-bench --json "${quick[@]}" > "bench/results/ours.$round.json"
  bench/.venv/bin/python bench/pytorch_reference.py --threads "$threads" "${quick[@]}" > "bench/results/torch.$round.json"
  bench/.venv/bin/python bench/numpy_limit.py --threads "$threads" "${quick[@]}" > "bench/results/numpy.$round.json"
done
bench/.venv/bin/python - <<'PY'
import json, statistics
ours = [json.load(open(f"bench/results/ours.{r}.json")) for r in (1, 2)]
torch = [json.load(open(f"bench/results/torch.{r}.json")) for r in (1, 2)]
numpy = [json.load(open(f"bench/results/numpy.{r}.json")) for r in (1, 2)]
fma = ", ".join(f"{k[9:-7]} {v:.0f}" for k, v in ours[0].items() if k.startswith("fma_peak_"))
print(f"threads: {ours[0]['threads']}, torch {torch[0]['torch']}, numpy {numpy[0]['numpy']}")
print(f"f32 FMA peak (GFLOP/s): {fma}; GEMM 2048^3: ours {ours[0]['gemm_peak_gflops']:.0f} ({ours[0]['gemm_isa']}), "
      f"OpenBLAS {numpy[0]['gemm_peak_gflops']:.0f}; peak RSS (ours) {ours[0]['peak_rss_mb']:.0f} MB")
print("| workload | satclip-rs | PyTorch | ours / PyTorch | numpy, products only | ours / numpy |")
print("|---|---|---|---|---|---|")
for key in ours[0]:
    if not key.startswith(("embed_", "geoclip_", "train_", "tower_")):
        continue
    o = statistics.median(r[key] for r in ours)
    if key not in torch[0]:  # ours only (the f64 path)
        print(f"| {key} | {o:,.0f} points/s | | | | |")
        continue
    t = statistics.median(r[key] for r in torch)
    limit = statistics.median(r[key] for r in numpy) if key in numpy[0] else None
    vs_limit = f"| {limit:,.0f} points/s | {o / limit:.2f}x |" if limit else "| | |"
    if key.startswith("tower_"):
        print(f"| {key} | {o:,.1f} tiles/s | {t:,.1f} tiles/s | {o / t:.2f}x | | |")
    elif key.startswith(("embed_", "geoclip_")):
        print(f"| {key} | {o:,.0f} points/s | {t:,.0f} points/s | {o / t:.2f}x {vs_limit}")
    else:
        print(f"| {key} | {o:.3f} s/step | {t:.3f} s/step | {t / o:.2f}x | | |")
PY
