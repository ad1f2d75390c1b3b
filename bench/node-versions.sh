#!/usr/bin/env bash
# W1 and W2x of pp-node (processes, the default) on each supported Node.js major, in one run:
# rounds interleave the versions (20, 22, 24, 20, 22, ...) so that a host whose speed drifts
# treats them alike; each version's figure is the median over its rounds.
#
#   bench/node-versions.sh [rounds]     (default 3; Node 22 and 24 from .ci/node-versions.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
npm run build >/dev/null
mapfile -t bins < <(command -v node; .ci/node-versions.sh | cut -d' ' -f2-)
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for bin in "${bins[@]}"; do
    v="$("$bin" --version)"
    echo "== round $r/$rounds, node $v" >&2
    # The table's row of 'pp-node': "pp-node   <W1 jobs/s>   <W2x>x"
    "$bin" --import tsx bench/run.ts --only W1,W2x --systems =pp-node --rounds 1 |
      tee -a "$out/$v.log" | awk '/^pp-node +[0-9,]+ +[0-9.]+x/ { gsub(",", "", $2); sub("x$", "", $3); print $2, $3 }' >>"$out/$v.rows"
    echo "round $r node $v: W1 $(tail -1 "$out/$v.rows" | cut -d' ' -f1) jobs/s, W2x $(tail -1 "$out/$v.rows" | cut -d' ' -f2)x; $(grep '^host capacity' "$out/$v.log" | tail -1)"
  done
done
echo "node       W1 jobs/s (median, all rounds)                W2x speedup (median, all rounds)"
for bin in "${bins[@]}"; do
  v="$("$bin" --version)"
  w1=$(cut -d' ' -f1 "$out/$v.rows" | sort -n | tr '\n' ' ')
  w2=$(cut -d' ' -f2 "$out/$v.rows" | sort -n | tr '\n' ' ')
  med() { awk '{ a[NR] = $0 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
  printf '%-10s %-8s (%s)   %-6s (%s)\n' "$v" \
    "$(cut -d' ' -f1 "$out/$v.rows" | sort -n | med)" "$w1" \
    "$(cut -d' ' -f2 "$out/$v.rows" | sort -n | med)" "$w2"
done
