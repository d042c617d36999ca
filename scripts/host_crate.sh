#!/usr/bin/env bash
# Builds and runs examples/host, a crate that depends on emberdb by path with
# no special flags, as an application would. It is built from outside this
# repository (so emberdb's .cargo/config.toml, which passes -march=native to
# the Faiss build, does not apply), each flavour in its own target directory.
#
#   scripts/host_crate.sh smoke         build as a host would and run its checks (CI)
#   scripts/host_crate.sh bench [DATA] [RATINGS] [ROUNDS]
#                                       the same program built three ways, run
#                                       side by side: trainer pairs/s/thread,
#                                       exact and HNSW knn p50, HNSW build
#                                       time; on RATINGS also `ember eval
#                                       --train-only` (the workspace build)
#                                       and gensim's Word2Vec
#
# DATA is a TEXMEX directory from ../shared/bench/make_dataset.py (default
# /tmp/peerbench/n100000_d64); RATINGS defaults to
# ../shared/data/ml-100k/ratings.csv. Either is skipped, with a message,
# when it is absent. ROUNDS (default 3) alternates the builds.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
source scripts/deps.sh
manifest="$repo/examples/host/Cargo.toml"

# build NAME [VAR=VALUE ...]: builds the host crate into target/host-NAME with
# the given environment, from / so no .cargo/config.toml of ours is read.
build() {
    local name=$1
    shift
    echo "host_crate.sh: building the host crate ($name)" >&2
    (cd / && env "$@" cargo build --release --quiet --manifest-path "$manifest" \
        --target-dir "$repo/target/host-$name")
}
binary() { echo "$repo/target/host-$1/release/emberdb-host-example"; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    smoke)
        install_deps; check_rust
        build plain
        "$(binary plain)" smoke
        ;;
    bench)
        install_deps; check_rust
        data="${1:-/tmp/peerbench/n100000_d64}"
        ratings="${2:-$repo/../shared/data/ml-100k/ratings.csv}"
        rounds="${3:-3}"
        data_args=()
        if [ -f "$data/base.fvecs" ]; then
            data_args+=(--data "$data")
        else
            echo "host_crate.sh: no $data/base.fvecs: knn figures skipped (python3 ../shared/bench/make_dataset.py --out $data)" >&2
        fi
        if [ -f "$ratings" ]; then
            data_args+=(--ratings "$ratings")
            python3 -c 'import gensim' 2>/dev/null || pip install --quiet gensim || true
            cargo build --release --quiet -p ember
        else
            echo "host_crate.sh: no $ratings: the ml-100k trainer figures are skipped" >&2
        fi
        # plain: what a host gets. snippet: plus the README's Faiss flags.
        # old-workspace: what emberdb's workspace built before runtime
        # dispatch (target-cpu for Rust, -march=native for Faiss).
        build plain
        build snippet CFLAGS=-march=native CXXFLAGS=-march=native
        build old-workspace CFLAGS=-march=native CXXFLAGS=-march=native RUSTFLAGS="-C target-cpu=x86-64-v3"
        out=$(mktemp -d)
        for round in $(seq "$rounds"); do
            for flavour in plain snippet old-workspace; do
                echo "host_crate.sh: round $round, $flavour" >&2
                "$(binary $flavour)" bench "${data_args[@]}" >>"$out/$flavour"
            done
            if [ -f "$ratings" ]; then
                for t in 1 2; do
                    "$repo/target/release/ember" eval "$ratings" --train-only --threads $t |
                        sed -n "s/^full training:.* \([0-9.]*\) M pairs\/s\/thread.*/ml100k_pairs_per_s_per_thread_${t}t \1e6/p" >>"$out/ember"
                done
                if python3 -c 'import gensim' 2>/dev/null; then
                    python3 "$repo/benches/gensim_item2vec.py" "$ratings" --workers 1 --no-eval |
                        sed -n 's/.*(\([0-9.]*\) M pairs\/s\/worker).*/ml100k_pairs_per_s_per_thread_1t \1e6/p' >>"$out/gensim"
                fi
            fi
        done
        python3 - "$out" <<'PY'
import sys, collections, os, statistics
out = sys.argv[1]
flavours = ["plain", "snippet", "old-workspace", "ember", "gensim"]
runs = {}
for f in flavours:
    values = collections.defaultdict(list)
    path = os.path.join(out, f)
    if os.path.exists(path):
        for line in open(path):
            k, v = line.split()
            values[k].append(v)
    runs[f] = values
keys = list(runs["plain"].keys())
print("host: examples/host built with no flags; snippet: plus CXXFLAGS=-march=native (README);")
print("old-workspace: target-cpu=x86-64-v3 + -march=native (how the workspace built before);")
print("ember: the workspace's `ember eval --train-only`; gensim: Word2Vec, one worker. Medians.")
print(f"{'figure':34} " + " ".join(f"{f:>16}" for f in flavours) + "   host/old")
for k in keys:
    vals = [runs[f].get(k) for f in flavours]
    cells, nums = [], []
    for v in vals:
        if not v:
            cells.append(f"{'-':>16}")
            nums.append(None)
            continue
        try:
            n = statistics.median(map(float, v))
            cells.append(f"{n:>16.2f}")
            nums.append(n)
        except ValueError:
            cells.append(f"{v[0]:>16}")
            nums.append(None)
    ratio = f"{nums[0] / nums[2]:.2f}" if nums[0] and nums[2] else ""
    print(f"{k:34} " + " ".join(cells) + f"   {ratio}")
PY
        ;;
    *)
        echo "usage: scripts/host_crate.sh smoke | bench [DATA_DIR] [RATINGS] [ROUNDS]" >&2
        exit 2
        ;;
esac
