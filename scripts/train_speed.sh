#!/usr/bin/env bash
# Training throughput, side by side in one run: emberdb's trainer with one
# and two threads and gensim's Word2Vec (one worker) on the same corpus and
# hyperparameters, alternating, ROUNDS times.
#   bash scripts/train_speed.sh RATINGS.csv [ROUNDS]
set -euo pipefail
ratings=${1:?usage: train_speed.sh RATINGS.csv [ROUNDS]}
rounds=${2:-3}
cd "$(dirname "$0")/.."
python3 -c 'import gensim' 2>/dev/null || pip install --quiet gensim
cargo build --release -p ember --quiet
for r in $(seq "$rounds"); do
  echo "round $r"
  for t in 1 2; do
    ./target/release/ember eval "$ratings" --train-only --threads "$t" | grep '^full training'
  done
  python3 benches/gensim_item2vec.py "$ratings" --workers 1 --no-eval
done
