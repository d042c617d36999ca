//! `ember eval --split temporal --cut F`: train on every event before the
//! time cut (the `F` quantile of the events' timestamps), then, for each
//! user with events after it, score the top `k` against every item the
//! user interacts with after the cut: HR@k (at least one of them in the
//! top k) and Recall@k (the share of them in the top k), averaged over
//! those users. The first table counts the users with events before the
//! cut (the ones a trained model can know); the second adds the new users,
//! whom only the trending channels can serve.
//!
//! Methods: all-time popularity before the cut (seen items excluded, the
//! classic baseline), the trending channel (`Query::popular().for_user`),
//! `Query::user`, `Query::recommend` (the store's default blend), and with
//! `--sweep-blend` the blend at other trending weights and the
//! popularity-prior alternative (one channel: the user's candidates
//! rescored by nearness + beta * ln(1 + recent count)).

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::bail;
use emberdb::{Event, Hit, Query, Store, MAX_K};

use crate::eval::EvalArgs;
use crate::input::count;
use crate::input::events::{self, Layout};

/// HR@k and Recall@k over users.
#[derive(Default, Clone, Copy)]
struct Scores {
    hits: f64,
    recall: f64,
    users: usize,
}

impl Scores {
    fn add(&mut self, ranked: &[u64], future: &HashSet<u64>) {
        self.users += 1;
        let found = ranked.iter().filter(|i| future.contains(i)).count();
        if found > 0 {
            self.hits += 1.0;
        }
        self.recall += found as f64 / future.len().max(1) as f64;
    }
    fn hr(&self) -> f64 {
        self.hits / self.users.max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.recall / self.users.max(1) as f64
    }
}

/// Blend weights on the trending channel and popularity-prior betas that
/// `--sweep-blend` measures.
const SWEEP_WEIGHTS: [f32; 6] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
const SWEEP_BETAS: [f32; 4] = [0.02, 0.05, 0.1, 0.2];

pub fn run(a: &EvalArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&a.cut) || a.cut == 0.0 {
        bail!("--cut must be between 0 and 1 (the share of events, by time, to train on)");
    }
    let (mut events, bad) = events::read(&a.ratings, Layout::MovieLens)?;
    if let Some((n, reason)) = bad.first().first() {
        bail!("{}: line {n}: {reason}", a.ratings.display());
    }
    events.sort_unstable_by_key(|e| (e.ts, e.user, e.item));
    let Some(cut_ts) = events.get((events.len() as f64 * a.cut) as usize).map(|e| e.ts) else {
        bail!("{}: no events", a.ratings.display());
    };
    let (train, test): (Vec<Event>, Vec<Event>) = events.into_iter().partition(|e| e.ts < cut_ts);
    let train: Vec<Event> = train.into_iter().filter(|e| e.weight >= a.min_weight).collect();
    let mut future: HashMap<u64, HashSet<u64>> = HashMap::new();
    for e in &test {
        future.entry(e.user).or_default().insert(e.item);
    }
    let mut seen: HashMap<u64, HashSet<u64>> = HashMap::new();
    for e in &train {
        seen.entry(e.user).or_default().insert(e.item);
    }
    for (user, items) in future.iter_mut() {
        if let Some(s) = seen.get(user) {
            items.retain(|i| !s.contains(i));
        }
    }
    future.retain(|_, items| !items.is_empty());
    writeln!(
        out,
        "temporal split at {:.0}% of events (timestamp {cut_ts}): {} to train on, {} after the cut for {} ({} of them new); trending window {} s",
        a.cut * 100.0,
        count(train.len() as u64, "event", "events"),
        test.len(),
        count(future.len() as u64, "user", "users"),
        future.keys().filter(|u| !seen.contains_key(u)).count(),
        a.trending_window
    )?;
    let tmp = tempfile::tempdir()?;
    let store = crate::eval::open_store_with(&tmp.path().join("temporal"), a, |o| {
        o.trending_window(a.trending_window)
    })?;
    for chunk in train.chunks(10_000) {
        store.append_events(chunk)?;
    }
    store.train_full()?;

    let mut counts: HashMap<u64, u64> = HashMap::new();
    for e in &train {
        *counts.entry(e.item).or_default() += 1;
    }
    let mut popular: Vec<(u64, u64)> = counts.into_iter().collect();
    popular.sort_unstable_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let recent: HashMap<u64, f32> = store
        .knn(&Query::popular().k(MAX_K).include_seen())?
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect();

    let k = a.k;
    let mut names: Vec<String> = vec![
        "popularity (all time)".into(),
        "Query::popular".into(),
        "Query::user".into(),
        "Query::recommend".into(),
    ];
    if a.sweep_blend {
        names.extend(SWEEP_WEIGHTS.iter().map(|w| format!("blend, trending {w}")));
        names.extend(SWEEP_BETAS.iter().map(|b| format!("prior, beta {b}")));
    }
    let mut scores = vec![Scores::default(); names.len()];
    let mut everyone = vec![Scores::default(); names.len()];
    let mut users: Vec<_> = future.iter().collect();
    users.sort_unstable_by_key(|(u, _)| **u);
    let empty = HashSet::new();
    for (&user, items) in users {
        let known = seen.contains_key(&user);
        let seen = seen.get(&user).unwrap_or(&empty);
        let top: Vec<u64> = popular
            .iter()
            .map(|p| p.0)
            .filter(|i| !seen.contains(i))
            .take(k)
            .collect();
        let mut ranked = vec![
            top,
            ids(&store.knn(&Query::popular().for_user(user).k(k))?),
            ids(&answer(&store, &Query::user(user).k(k))?),
            ids(&store.knn(&Query::recommend(user).k(k))?),
        ];
        if a.sweep_blend {
            for w in SWEEP_WEIGHTS {
                let blend = Query::blend()
                    .add(Query::user(user), 1.0)
                    .add(Query::popular().for_user(user), w)
                    .k(k);
                ranked.push(ids(&store.knn(&blend)?));
            }
            let candidates = answer(&store, &Query::user(user).k(200))?;
            for beta in SWEEP_BETAS {
                let mut rescored: Vec<(f32, u64)> = candidates
                    .iter()
                    .map(|h| {
                        (
                            h.score + beta * (1.0 + recent.get(&h.id).copied().unwrap_or(0.0)).ln(),
                            h.id,
                        )
                    })
                    .collect();
                rescored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
                ranked.push(rescored.iter().take(k).map(|(_, id)| *id).collect());
            }
        }
        for (i, r) in ranked.iter().enumerate() {
            everyone[i].add(r, items);
            if known {
                scores[i].add(r, items);
            }
        }
    }
    let (hr, recall) = (format!("HR@{k}"), format!("Recall@{k}"));
    for (title, scores) in [
        ("users with events before the cut", &scores),
        ("all users active after the cut", &everyone),
    ] {
        writeln!(out, "{title} ({}):", count(scores[0].users as u64, "user", "users"))?;
        writeln!(out, "  {:<24} {:>8} {:>10}", "method", hr, recall)?;
        for (name, s) in names.iter().zip(scores) {
            writeln!(out, "  {:<24} {:>8.4} {:>10.4}", name, s.hr(), s.recall())?;
        }
    }
    Ok(())
}

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

/// A user query's hits; none for a user with no event before the cut.
fn answer(store: &Store, q: &Query) -> anyhow::Result<Vec<Hit>> {
    match store.knn(q) {
        Ok(hits) => Ok(hits),
        Err(emberdb::Error::UnknownUser { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}
