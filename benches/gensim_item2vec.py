#!/usr/bin/env python3
"""gensim's Word2Vec as item2vec on the `ember eval` protocol, for a side-by-side
comparison with emberdb's trainer (see scripts/train_speed.sh).

Same split as `ember eval`: per user, events sorted by (timestamp, item id),
the last held out, the rest one sentence in time order. Skip-gram with
negative sampling over the whole history (window = longest history,
shrink_windows=False), so the positive pairs are the same as emberdb's
window 0. gensim does not count pairs: the expected count after
subsampling is computed from the same keep probabilities, E[k(k-1)] =
(sum p)^2 - sum p^2 per sentence and epoch.

Prints training seconds, expected pairs per second, and HR@10 / NDCG@10 with
the user represented by their last training item (the issue's baseline).
"""
import argparse
import collections
import math
import time

from gensim.models import Word2Vec


def read_split(path):
    per_user = collections.defaultdict(list)
    with open(path) as f:
        next(f)
        for line in f:
            if not line.strip():
                continue
            u, i, _r, ts = line.strip().split(",")[:4]
            per_user[int(u)].append((int(ts), int(i)))
    train, test = {}, {}
    for u, ev in per_user.items():
        ev.sort()
        test[u] = ev[-1][1]
        train[u] = [i for _, i in ev[:-1]]
    return train, test


def expected_pairs(sentences, sample, epochs):
    counts = collections.Counter(i for s in sentences for i in s)
    total = sum(counts.values())
    thr = sample * total

    def keep(c):
        if sample <= 0:
            return 1.0
        return min(1.0, (math.sqrt(c / thr) + 1) * thr / c)

    p = {i: keep(c) for i, c in counts.items()}
    pairs = 0.0
    for s in sentences:
        ps = [p[i] for i in s]
        pairs += sum(ps) ** 2 - sum(x * x for x in ps)
    return pairs * epochs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ratings")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--negative", type=int, default=5)
    ap.add_argument("--ns-exponent", type=float, default=-0.5)  # ember eval's default
    ap.add_argument("--sample", type=float, default=1e-3)
    ap.add_argument("--alpha", type=float, default=0.025)
    ap.add_argument("--min-alpha", type=float, default=0.0001)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-eval", action="store_true")
    a = ap.parse_args()

    train, test = read_split(a.ratings)
    users = sorted(train)
    sentences = [[str(i) for i in train[u]] for u in users if len(train[u]) >= 2]
    window = max(len(s) for s in sentences)
    model = Word2Vec(vector_size=a.dim, window=window, shrink_windows=False, min_count=1, sg=1, hs=0,
                     negative=a.negative, ns_exponent=a.ns_exponent, sample=a.sample, alpha=a.alpha,
                     min_alpha=a.min_alpha, workers=a.workers, seed=a.seed)
    model.build_vocab(sentences)
    t0 = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=a.epochs)
    secs = time.perf_counter() - t0
    pairs = expected_pairs(sentences, a.sample, a.epochs)
    print(f"gensim: {secs:.2f} s training, {pairs:.0f} expected pairs, "
          f"{pairs / secs / 1e6:.2f} M pairs/s on {a.workers} workers "
          f"({pairs / secs / a.workers / 1e6:.2f} M pairs/s/worker)")
    if a.no_eval:
        return
    hits = ndcg = 0.0
    for u in users:
        seen = set(train[u])
        if not train[u] or str(train[u][-1]) not in model.wv:
            continue
        ranked = [int(i) for i, _ in model.wv.most_similar(str(train[u][-1]), topn=len(seen) + 10)
                  if int(i) not in seen][:10]
        if test[u] in ranked:
            r = ranked.index(test[u])
            hits += 1
            ndcg += 1 / math.log2(r + 2)
    n = len(users)
    print(f"gensim user = last item: HR@10 {hits / n:.4f}, NDCG@10 {ndcg / n:.4f} ({n} users)")


if __name__ == "__main__":
    main()
