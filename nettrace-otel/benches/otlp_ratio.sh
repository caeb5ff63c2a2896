#!/usr/bin/env bash
# The keep-alive rate with and without --otlp (BENCHMARKS.md, issue 15): alternated pairs of
# `nettrace get --repeat N --stream` against the fixture server, rotel-agent (blackhole exporter)
# and the server on CPU 0; then rotel-agent's own CPU per exported trace. As root or not.
#
#   cargo build --release -p nettrace-cli --bin nettrace && cargo build --release --example bench_server
#   PIN=1 PAIRS=8 nettrace-otel/benches/otlp_ratio.sh      # client pinned to CPU 1
#   AGENT_IDLE=1 PIN=1 PAIRS=8 nettrace-otel/benches/otlp_ratio.sh   # the collector idle-class
#   EXPORT_CPU=0 PIN=1 PAIRS=20 nettrace-otel/benches/otlp_ratio.sh  # the exporter's threads on CPU 0
#   CONTROL=1 PIN=1 PAIRS=20 nettrace-otel/benches/otlp_ratio.sh  # A/A: no --otlp in either run
#
# Prints per pair, without | with --otlp: the wall time and the client's CPU time.
set -euo pipefail
N=${N:-20000}
PAIRS=${PAIRS:-6}
PIN=${PIN:-}
TARGET=${CARGO_TARGET_DIR:-target}/release
BIN=${BIN:-$TARGET/nettrace}
SERVER=${SERVER:-$TARGET/examples/bench_server}
AGENT=${AGENT:-$(command -v rotel-agent || python3 -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')}
HTTP_PORT=${HTTP_PORT:-24318}
work=$(mktemp -d)
cleanup() { kill "$server" "$agent" 2>/dev/null || true; rm -rf "$work"; }
taskset -c 0 "$SERVER" >"$work/server.out" 2>&1 &
server=$!
# AGENT_IDLE=1 runs the collector in the idle scheduling class (chrt --idle), as the exporter's
# own thread runs: both then use only CPU time the traced requests leave.
${AGENT_IDLE:+chrt --idle 0} taskset -c 0 "$AGENT" start --otlp-http-endpoint "127.0.0.1:$HTTP_PORT" \
  --otlp-grpc-endpoint "127.0.0.1:$((HTTP_PORT - 1))" --exporter blackhole >"$work/rotel.out" 2>&1 &
agent=$!
trap cleanup EXIT
for _ in $(seq 100); do
  [ -s "$work/server.out" ] && curl -s -o /dev/null -X POST "http://127.0.0.1:$HTTP_PORT/v1/traces" \
    -H 'content-type: application/x-protobuf' --data-binary '' && break
  sleep 0.1
done
url=$(head -1 "$work/server.out")
# Wall time, then the client's CPU time: `perf stat`'s task-clock (all threads, to the
# microsecond) where perf can count it, else user + system from /usr/bin/time (10 ms ticks:
# too coarse for a difference of a few µs per request). Chosen once, before the pairs.
client=(get "$url" --repeat "$N" --stream --sock-trace --dns-trace --headers values -o /dev/null)
# EXPORT_CPU=K moves the exporter's two threads (`nettrace-otlp` and the HTTP client's
# `reqwest-internal-sync-runtime`, named by their first 15 bytes in comm) of the running
# client onto CPU K, beside the server and the collector, so that they do not take the
# request threads' CPU: what export costs the traced requests themselves. The mover runs on
# CPU K itself, looks only at the newest `nettrace` process, and gives up after 3 s (the
# threads start before the first request).
move_exporter() {
  taskset -p -c "$EXPORT_CPU" "$BASHPID" >/dev/null
  local deadline=$((SECONDS + 3)) pid="" comm name tid moved=" " count=0
  while ((SECONDS < deadline)); do
    [ -n "$pid" ] || pid=$(pgrep -n -x nettrace || true)
    for comm in ${pid:+/proc/$pid/task/*/comm}; do
      read -r name <"$comm" 2>/dev/null || continue
      tid=${comm%/comm}
      tid=${tid##*/}
      case $name in
        nettrace-otlp | reqwest-interna)
          [[ $moved == *" $tid "* ]] && continue
          taskset -p -c "$EXPORT_CPU" "$tid" >/dev/null 2>&1 && moved+="$tid " && count=$((count + 1))
          ;;
      esac
    done
    ((count >= 2)) && return
    sleep 0.01
  done
  echo "EXPORT_CPU: moved $count of the exporter's 2 threads" >&2
}
# Starts the mover for a run with --otlp (its pid in $mover), and ends it after the run.
start_mover() {
  mover=""
  if [ -n "${EXPORT_CPU:-}" ] && [ "$#" -gt 0 ]; then
    move_exporter >/dev/null &
    mover=$!
  fi
}
stop_mover() {
  if [ -n "$mover" ]; then
    kill "$mover" 2>/dev/null || true
    wait "$mover" 2>/dev/null || true
  fi
}
if perf stat -x, -e task-clock -o /dev/null -- true 2>/dev/null; then
  run() {
    local begin end cpu
    begin=$(date +%s%N)
    start_mover "$@"
    if ! perf stat -x, -e task-clock -o "$work/stat" -- ${PIN:+taskset -c "$PIN"} "$BIN" \
      "${client[@]}" "$@" >/dev/null 2>"$work/client.err"; then
      stop_mover
      echo "client failed: $(tail -1 "$work/client.err")"
      return
    fi
    end=$(date +%s%N)
    stop_mover
    cpu=$(awk -F, '/task-clock/ && $1 ~ /^[0-9.]+$/ {printf "%.3f", $1 / 1000}' "$work/stat")
    echo "$(( (end - begin) / 1000000 )) ms, cpu ${cpu:-unknown} s"
  }
else
  echo "perf stat cannot count task-clock here: CPU from /usr/bin/time (10 ms ticks)"
  run() {
    start_mover "$@"
    /usr/bin/time -f "%e s, user %U s, sys %S s" ${PIN:+taskset -c "$PIN"} "$BIN" \
      "${client[@]}" "$@" 2>&1 | tail -1
    stop_mover
  }
fi
# CONTROL=1: an A/A control, both runs of each pair without --otlp (the spread this host
# gives two identical runs, against which a with/without ratio can be judged).
with=(--otlp "http://127.0.0.1:$HTTP_PORT")
[ -n "${CONTROL:-}" ] && with=()
# The order alternates (odd pairs without first, even pairs with first): in A/A runs of a
# fixed order the second run of a pair was 2.4 % slower in the median (20 pairs, session 14).
for pair in $(seq "$PAIRS"); do
  if ((pair % 2)); then
    without=$(run)
    with_result=$(run "${with[@]}")
  else
    with_result=$(run "${with[@]}")
    without=$(run)
  fi
  echo "pair $pair: without $without | with $with_result"
done
# The collector's own CPU (utime + stime, clock ticks) around one more exported run.
ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
before=$(ticks)
run --otlp "http://127.0.0.1:$HTTP_PORT" >/dev/null
echo "rotel-agent: $(( ($(ticks) - before) * 1000000000 / $(getconf CLK_TCK) / N )) ns of CPU per trace"
