#!/usr/bin/env bash
# HNSW build time of emberdb's static Faiss against the faiss-cpu wheel, on
# the same TEXMEX data and one OpenMP thread, alternating the two for
# ROUNDS rounds so that machine noise falls on both; prints the medians.
#
#   pip install faiss-cpu numpy
#   bash scripts/build_speed.sh DATA_DIR [ROUNDS] [EF_CONSTRUCTION]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/build_speed.sh DATA_DIR [ROUNDS] [EF_CONSTRUCTION]}
rounds=${2:-3}
efc=${3:-40}
cargo build --release -q -p ember
export OMP_NUM_THREADS=1
ours=(); crate=(); wheel=()
for r in $(seq "$rounds"); do
    w=$(python3 benches/faiss_wheel_build.py "$data" --ef-construction "$efc" | sed -n 's/^HNSW.*build \([0-9.]*\) s$/\1/p')
    line=$(target/release/ember bench "$data" --kinds hnsw --ef 96 --ef-construction "$efc" --queries 10 | grep 'ours: ingest')
    o=$(sed -n 's/.*, build \([0-9.]*\) s, open.*/\1/p' <<<"$line")
    c=$(sed -n 's/.*faiss crate build \([0-9.]*\) s$/\1/p' <<<"$line")
    echo "round $r: wheel ${w} s, emberdb ${o} s (faiss crate directly ${c} s)"
    wheel+=("$w"); ours+=("$o"); crate+=("$c")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mw=$(median "${wheel[@]}"); mo=$(median "${ours[@]}"); mc=$(median "${crate[@]}")
echo "median: wheel ${mw} s, emberdb ${mo} s, faiss crate ${mc} s; emberdb / wheel = $(awk "BEGIN {printf \"%.2f\", $mo / $mw}")"
