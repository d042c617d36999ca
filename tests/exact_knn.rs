//! Exact knn agrees with a straightforward reference computation, for every
//! metric, across sealed and growing segments, with deletes and updates.

mod common;

use common::{normalized, random_vectors};
use emberdb::{Durability, Metric, Options, Query, Store};

const DIM: usize = 24;

fn reference(metric: Metric, live: &[(u64, Vec<f32>)], q: &[f32], k: usize, skip: Option<u64>) -> Vec<(u64, f64)> {
    let mut scored: Vec<(u64, f64)> = live
        .iter()
        .filter(|(id, _)| Some(*id) != skip)
        .map(|(id, v)| {
            let s = match metric {
                Metric::L2 => v.iter().zip(q).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum(),
                _ => v.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum(),
            };
            (*id, s)
        })
        .collect();
    scored.sort_by(|a, b| match metric {
        Metric::L2 => a.1.total_cmp(&b.1),
        _ => b.1.total_cmp(&a.1),
    });
    scored.truncate(k);
    scored
}

#[test]
fn exact_knn_matches_the_reference_for_every_metric() {
    for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            Options::new(DIM)
                .metric(metric)
                .durability(Durability::None)
                .segment_rows(300),
        )
        .unwrap();
        let vectors = random_vectors(1000, DIM, 42);
        let mut live: Vec<(u64, Vec<f32>)> = Vec::new();
        for (i, v) in vectors.iter().enumerate() {
            store.upsert(i as u64 * 3, v).unwrap();
        }
        // Updates move some items into the growing segment; deletes kill others.
        let updates = random_vectors(100, DIM, 43);
        for (j, v) in updates.iter().enumerate() {
            store.upsert(j as u64 * 30, v).unwrap();
        }
        for id in (0..3000u64).step_by(21) {
            store.delete(id).unwrap();
        }
        for (i, v) in vectors.iter().enumerate() {
            let id = i as u64 * 3;
            if id.is_multiple_of(21) {
                continue;
            }
            let v = if id.is_multiple_of(30) {
                &updates[(id / 30) as usize]
            } else {
                v
            };
            let stored = if metric == Metric::Cosine {
                normalized(v)
            } else {
                v.clone()
            };
            live.push((id, stored));
        }
        assert!(store.stats().unwrap().sealed_segments >= 3);

        for (qi, q) in random_vectors(20, DIM, 44).iter().enumerate() {
            let qn = if metric == Metric::Cosine {
                normalized(q)
            } else {
                q.clone()
            };
            let want = reference(metric, &live, &qn, 10, None);
            let got = store.knn(&Query::vector(q).k(10)).unwrap();
            assert_eq!(got.len(), 10);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g.score as f64 - w.1).abs() < 1e-4,
                    "{metric:?} query {qi}: {g:?} vs {w:?}"
                );
            }
            let got_ids: Vec<u64> = got.iter().map(|h| h.id).collect();
            let want_ids: Vec<u64> = want.iter().map(|w| w.0).collect();
            assert_eq!(got_ids, want_ids, "{metric:?} query {qi}");
        }
        // Item queries exclude the item itself.
        let (id, v) = &live[17];
        let want: Vec<u64> = reference(metric, &live, v, 5, Some(*id)).iter().map(|w| w.0).collect();
        let got: Vec<u64> = store
            .knn(&Query::item(*id).k(5))
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(got, want, "{metric:?} item query");
        // Asking for more than there is returns everything live.
        assert_eq!(
            store.knn(&Query::vector(&vectors[0]).k(5000)).unwrap().len(),
            live.len()
        );
    }
}
