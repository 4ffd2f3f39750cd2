#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each (default 20): first its seed
# corpus (fuzz/corpus/<target>), then new inputs, with the limits a hostile file must respect
# (1.5 GB of memory, 10 s per input). Any crash, leak, timeout or out-of-memory fails the script
# and leaves the input in fuzz/artifacts/<target>/. CI runs it as a smoke test; for a campaign,
# pass 600 or more. Where the nightly toolchain is missing it says SKIPPED and succeeds.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
shift || true
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "SKIPPED: fuzzing needs the nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version 0.13.2
fi
cargo +nightly fuzz build -O
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
log="$(mktemp)"
for target in "${targets[@]}"; do
  scratch="$(mktemp -d)"
  echo "fuzzing $target for ${seconds}s"
  status=0
  cargo +nightly fuzz run -O "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=1536 -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
  rm -rf "$scratch"
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/"
    exit 1
  fi
done
rm -f "$log"
echo "fuzzed ${#targets[@]} targets, ${seconds}s each: no crash"
