#!/usr/bin/env bash
# Long fuzz runs, one target at a time: 10 million executions each (or FUZZ_MAX_SECONDS,
# whichever comes first), memory per input bounded, niced. Prints one Markdown table row per
# target (execs, seconds, exec/s, corpus size, peak RSS, findings) for FUZZING.md.
#
#   fuzz/long.sh                          # every target
#   FUZZ_MAX_SECONDS=600 fuzz/long.sh dns_message trace_json
#   FUZZ_SANITIZER=none fuzz/long.sh dns_message   # no AddressSanitizer (code without unsafe)
set -euo pipefail
cd "$(dirname "$0")"
runs=${FUZZ_RUNS:-10000000}
max_seconds=${FUZZ_MAX_SECONDS:-0}
sanitizer=${FUZZ_SANITIZER:-address}
# One build per sanitizer: switching would rebuild everything in one directory.
default_dir=$PWD/../target/fuzz
[ "$sanitizer" = address ] || default_dir+="-$sanitizer"
target_dir=${FUZZ_TARGET_DIR:-$default_dir}
work=${FUZZ_WORK_DIR:-$(mktemp -d)}
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo +nightly fuzz list)

# A panic's backtrace, symbolized under AddressSanitizer, can pass the 256 MB bound by
# itself and hide the finding behind an out-of-memory report.
export RUST_BACKTRACE=0
cargo +nightly fuzz build -s "$sanitizer" --target-dir "$target_dir"
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  log="$work/$target.log"
  started=$(date +%s)
  status=0
  nice -n 10 cargo +nightly fuzz run -s "$sanitizer" --target-dir "$target_dir" "$target" "$work/$target" "corpus/$target" -- \
    -runs="$runs" -max_total_time="$max_seconds" -rss_limit_mb=256 -malloc_limit_mb=256 \
    -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
  seconds=$(( $(date +%s) - started ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  corpus=$(find "$work/$target" "corpus/$target" -type f | wc -l)
  findings=$([ "$status" -eq 0 ] && echo none || echo "exit $status, see $log")
  echo "| $target | ${execs:-?} | ${seconds} s | $(( ${execs:-0} / (seconds > 0 ? seconds : 1) )) | $corpus | ${rss:-?} MB | $findings |"
done
