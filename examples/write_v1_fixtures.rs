//! Writes the format-1 fixture stores under tests/fixtures (run once, at the
//! commit that added them: `cargo run --release --example write_v1_fixtures
//! -- tests/fixtures`), with the answers they gave then in `answers.txt`.
//! Later builds must open both and answer the same (tests/fixtures.rs).
//!
//! With a second argument TAG (`v5`), it writes `TAG-host`, `TAG-trained`
//! and `answers-TAG.txt`, and also gives the stores what later formats
//! keep: user features, item attributes and a store-wide delete, with
//! their answers (`features`, `attributes`, `deleted` lines). Format 5's
//! fixtures were written so (the commit that added them), the last format
//! that kept histories, features and attributes in sled.

use std::fmt::Write as _;
use std::path::Path;

use emberdb::{Durability, Event, Metric, Options, Query, Store, TrainOptions};

fn vector(id: u64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| ((id.wrapping_mul(31).wrapping_add(j as u64 * 17)) % 97) as f32 / 97.0 - 0.45)
        .collect()
}

fn answers(store: &Store, name: &str, items: &[u64], users: &[u64], out: &mut String) {
    for &item in items {
        let v = store.get(item).unwrap();
        writeln!(
            out,
            "{name} get {item} {}",
            v.as_ref().map_or("none".into(), |v| format!("{v:?}"))
        )
        .unwrap();
        if v.is_some() {
            let hits = store.knn(&Query::item(item).k(5)).unwrap();
            writeln!(
                out,
                "{name} item {item} {}",
                hits.iter()
                    .map(|h| format!("{}:{}", h.id, h.score))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
            .unwrap();
        }
    }
    for &user in users {
        writeln!(out, "{name} history {user} {:?}", store.history(user).unwrap()).unwrap();
        let hits = store.knn(&Query::user(user).k(5)).unwrap();
        writeln!(
            out,
            "{name} user {user} {}",
            hits.iter()
                .map(|h| format!("{}:{}", h.id, h.score))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .unwrap();
    }
}

/// What a later format's fixture also holds: features of users 0..3,
/// attributes of a few items, one store-wide delete; and their answers.
fn extras(store: &Store, name: &str, items: &[u64], deleted: u64, out: &mut String) {
    for user in 0..3u64 {
        let age = (20 + user * 7).to_string();
        store
            .set_user_features(user, &[("age", age.as_str()), ("gender", "F")])
            .unwrap();
    }
    for &item in items {
        let year = (1990 + item % 10).to_string();
        store
            .set_attributes(
                item,
                &[
                    ("title", "Item"),
                    ("year", year.as_str()),
                    ("genre", "a"),
                    ("genre", "b"),
                ],
            )
            .unwrap();
    }
    store.delete(deleted).unwrap();
    for user in 0..4u64 {
        writeln!(out, "{name} features {user} {:?}", store.user_features(user)).unwrap();
    }
    for &item in items {
        writeln!(out, "{name} attributes {item} {:?}", store.attributes(item)).unwrap();
    }
    writeln!(out, "{name} deleted {deleted} true").unwrap();
}

fn main() {
    let root = std::env::args().nth(1).expect("usage: write_v1_fixtures DIR [TAG]");
    let tag = std::env::args().nth(2).unwrap_or_else(|| "v1".to_string());
    let later = tag != "v1";
    let root = Path::new(&root);
    let mut out = String::new();

    let host = root.join(format!("{tag}-host"));
    {
        let store = Store::open(
            &host,
            Options::new(8)
                .metric(Metric::Cosine)
                .segment_rows(64)
                .durability(Durability::Sync),
        )
        .unwrap();
        for id in 0..150u64 {
            store.upsert(id, &vector(id, 8)).unwrap();
        }
        for id in [3u64, 70, 140] {
            store.delete(id).unwrap();
        }
        store.upsert(5, &vector(1005, 8)).unwrap();
        let events: Vec<Event> = (0..60u64)
            .map(|n| Event::new(n % 6, (n * 7) % 150, 1_000 + n))
            .collect();
        store.append_events(&events).unwrap();
        if later {
            extras(&store, "host", &[0, 5, 64], 149, &mut out);
        }
        answers(&store, "host", &[0, 3, 5, 64, 149], &[0, 1, 5], &mut out);
    }

    let trained = root.join(format!("{tag}-trained"));
    {
        let store = Store::open(
            &trained,
            Options::trained(8)
                .train_options(TrainOptions::default().epochs(5).threads(1).seed(3))
                .segment_rows(64)
                .durability(Durability::Sync),
        )
        .unwrap();
        let mut events = Vec::new();
        for user in 0..40u64 {
            let cluster = user % 4;
            for t in 0..8u64 {
                events.push(Event::new(user, cluster * 20 + (user * 3 + t * 5) % 20, 10_000 + t));
            }
        }
        store.append_events(&events).unwrap();
        store.train().unwrap();
        // A new item after the round: a provisional vector.
        store.append_event(Event::new(1, 500, 20_000)).unwrap();
        if later {
            extras(&store, "trained", &[0, 21, 500], 45, &mut out);
        }
        answers(&store, "trained", &[0, 21, 45, 500], &[1, 2, 3], &mut out);
    }
    let answers = if later {
        format!("answers-{tag}.txt")
    } else {
        "answers.txt".to_string()
    };
    std::fs::write(root.join(answers), out).unwrap();
}
