#!/bin/bash
# The eBPF programs' own time per new traced connection, from the kernel's run statistics
# (both ends of each loopback connection; the statistics add their two clock reads, about
# 50 ns, to every run). As root, with bpftool (apt-get install bpftool):
#
#   CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench kernel_conn --no-run
#   nettrace-user/benches/kernel_programs.sh target/bench/release/deps/kernel_conn-<hash> [N]
#
# Runs `kernel_conn`'s kernel kind alone for N connections (default 8000, the fixture server
# in a process of its own) and reads the programs' counters until it ends. Connections are
# counted as runs of `nettrace_sock_create_announced`: once per IPv4/IPv6 socket created on
# the machine, so run it on an otherwise quiet machine, with no loader daemon (whose programs
# have the same names). bpftool names programs from their BTF (full names; the kernel keeps
# only 15 characters).
set -euo pipefail
bench=${1:?usage: kernel_programs.sh KERNEL_CONN_BINARY [CONNECTIONS]}
connections=${2:-8000}
command -v bpftool > /dev/null || { echo "SKIPPED kernel_programs.sh: bpftool not installed"; exit 0; }

before=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -q kernel.bpf_stats_enabled="$before"' EXIT
sysctl -q kernel.bpf_stats_enabled=1

NETTRACE_KCONN_SERVER=process NETTRACE_KCONN_KIND=traced_kernel \
  NETTRACE_KCONN_REQUESTS="$connections" "$bench" > /dev/null 2>&1 &
pid=$!
last=""
# The programs go with the process: the last reading before its end counts.
while kill -0 "$pid" 2> /dev/null; do
  reading=$(bpftool prog show --json 2> /dev/null || true)
  if grep -q nettrace_sock_create_announced <<< "$reading"; then last=$reading; fi
  sleep 0.05
done
wait "$pid"
[ -n "$last" ] || { echo "no reading of the programs was taken" >&2; exit 1; }

python3 - "$last" <<'EOF'
import json, sys

programs = [p for p in json.loads(sys.argv[1]) if p.get("name", "").startswith("nettrace")]
sockets = next(p["run_cnt"] for p in programs if p["name"] == "nettrace_sock_create_announced")
total = 0
for p in sorted(programs, key=lambda p: -p.get("run_time_ns", 0)):
    if not p.get("run_cnt"):
        continue
    total += p["run_time_ns"]
    print(f"{p['name']:34} runs/conn {p['run_cnt'] / sockets:5.2f}  ns/run "
          f"{p['run_time_ns'] / p['run_cnt']:6.1f}  ns/conn {p['run_time_ns'] / sockets:7.1f}")
print(f"connections (sockets created) {sockets}; all programs {total / sockets:.0f} ns per connection")
EOF
