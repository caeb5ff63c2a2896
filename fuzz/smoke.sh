#!/usr/bin/env bash
# Fuzz smoke run for CI: builds every target of fuzz/ (cargo-fuzz, libFuzzer, AddressSanitizer,
# debug assertions) and runs each for a fixed time from its committed corpus, with memory per
# input bounded. New inputs go to a scratch folder, so the committed corpora stay small.
# A finding fails the run; its input is in fuzz/artifacts/<target>/.
#
#   fuzz/smoke.sh                 # 20 s per target
#   FUZZ_SECONDS=60 fuzz/smoke.sh
#   FUZZ_TARGET_DIR=/tmp/t fuzz/smoke.sh   # where to build (default: target/fuzz)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-20}
target_dir=${FUZZ_TARGET_DIR:-$PWD/../target/fuzz}

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# A panic's backtrace, symbolized under AddressSanitizer, can pass the 256 MB bound by
# itself and hide the finding behind an out-of-memory report.
export RUST_BACKTRACE=0
cargo +nightly fuzz build --target-dir "$target_dir"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  echo "=== $target (${seconds}s)"
  status=0
  cargo +nightly fuzz run --target-dir "$target_dir" "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=256 -malloc_limit_mb=256 -timeout=10 \
    -print_final_stats=1 >"$scratch/$target.log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$scratch/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch/$target.log" >&2
    echo "fuzz target $target found a problem: its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz smoke: every target ran ${seconds}s without a finding"
