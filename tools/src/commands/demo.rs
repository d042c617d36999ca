//! `ember demo`: the quick-start tour of a multi-channel store. A
//! synthetic catalogue whose items belong to hidden genres, users who
//! mostly watch one genre, and what a recommender does with them: ingest
//! events, train two channels inside the store in one call (item2vec and
//! the YouTube DNN), ask for similar items and for each channel's recall
//! (item2vec, the DNN, trending), blend them (`Query::recommend` and a
//! blend of all three), answer a batch of users on every core, take in a
//! brand-new item, train incrementally, reopen.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use emberdb::{
    DnnOptions, Durability, Event, Options, Query, SpaceSpec, Store, TrainOptions, TrainReport, TrainRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::input::count;

const DIM: usize = 32;
const GENRES: u64 = 40;
const USERS: u64 = 5_000;
/// The YouTube DNN channel's space.
const DNN: &str = "dnn";

/// The synthetic world: item `i` is of genre `i % GENRES`.
struct World {
    rng: StdRng,
}

impl World {
    fn genre(item: u64) -> u64 {
        item % GENRES
    }

    /// A user's favourite genre (most of their events are in it).
    fn favourite(user: u64) -> u64 {
        user.wrapping_mul(2_654_435_761) % GENRES
    }

    fn event(&mut self, items: u64, ts: u64) -> Event {
        let user = self.rng.gen_range(0..USERS);
        let genre = if self.rng.gen_bool(0.8) {
            Self::favourite(user)
        } else {
            self.rng.gen_range(0..GENRES)
        };
        // Popular items (small ranks) are picked more often within a genre.
        let per_genre = (items / GENRES).max(1);
        let rank = ((self.rng.gen::<f64>().powi(2)) * per_genre as f64) as u64;
        Event::new(user, (rank.min(per_genre - 1)) * GENRES + genre, ts)
    }
}

fn rate(count: u64, since: Instant) -> String {
    let secs = since.elapsed().as_secs_f64();
    format!("{count} in {:.0} ms ({:.0}/s)", secs * 1e3, count as f64 / secs)
}

fn describe(r: &TrainReport) -> String {
    let work = match &r.dnn {
        Some(dnn) => format!("{:.0} k examples, loss {:.2}", r.run.pairs as f64 / 1e3, dnn.loss),
        None => format!(
            "{:.1} M pairs at {:.1} M pairs/s/thread",
            r.run.pairs as f64 / 1e6,
            r.pairs_per_second_per_thread() / 1e6
        ),
    };
    format!(
        "{} round, generation {}: {} ({} new), {} (+{} replayed), {}, {work} on {}; {:.1} s ({:.2} s publishing)",
        if r.full { "full" } else { "incremental" },
        r.generation,
        count(r.items as u64, "item", "items"),
        r.new_items,
        count(r.fresh_histories as u64, "history", "histories"),
        r.replayed_histories,
        count(r.epochs as u64, "epoch", "epochs"),
        count(r.run.threads as u64, "thread", "threads"),
        r.gather_seconds + r.run.seconds + r.publish_seconds,
        r.publish_seconds
    )
}

/// Every channel's rounds, one line per space.
fn train(store: &Store, out: &mut impl Write, what: &str) -> anyhow::Result<()> {
    for report in store.train_with(&TrainRequest::new())? {
        writeln!(out, "{what} {}: {}", report.space, describe(&report))?;
    }
    Ok(())
}

/// The demo's blend: item2vec's taste, the DNN, a little trending.
fn three_channels(user: u64) -> Query {
    Query::blend()
        .add(Query::user(user).recent(30), 1.0)
        .add(Query::user(user).space(DNN), 1.0)
        .add(Query::popular().for_user(user), 0.3)
        .k(10)
}

/// How many of `hits` are of `genre`.
fn in_genre(hits: &[emberdb::Hit], genre: u64) -> usize {
    hits.iter().filter(|h| World::genre(h.id) == genre).count()
}

pub fn run(dir: Option<PathBuf>, items: u64, events: u64, out: &mut impl Write) -> anyhow::Result<()> {
    if items < GENRES {
        bail!("--items must be at least {GENRES}");
    }
    let temp;
    let path = match dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("a temporary directory for the demo store")?;
            temp.path().join("demo-store")
        }
    };
    // Fewer epochs than the DNN's default (10), so the tour stays within
    // a minute on two cores; the recall is still the DNN's.
    let dnn = DnnOptions {
        epochs: 4,
        ..DnnOptions::default()
    };
    let opts = Options::trained(DIM)
        .train_options(TrainOptions::default())
        .space(DNN, SpaceSpec::youtube_dnn(DIM).dnn_options(dnn))
        .durability(Durability::Buffered)
        // Small enough that the demo's generation gets an HNSW index.
        .flat_below(1_000);
    writeln!(
        out,
        "emberdb demo: a store with three channels at {}: item2vec (space \"default\"), the YouTube DNN (space \"{DNN}\"), trending",
        path.display()
    )?;
    writeln!(
        out,
        "  {} in {GENRES} hidden genres, {USERS} users, {}, dim {DIM}\n",
        count(items, "item", "items"),
        count(events, "event", "events")
    )?;

    let mut world = World {
        rng: StdRng::seed_from_u64(42),
    };
    let store = Store::open(&path, opts.clone())?;

    let t = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for ts in 0..events {
        batch.push(world.event(items, ts));
        if batch.len() == batch.capacity() {
            store.append_events(&batch)?;
            batch.clear();
        }
    }
    store.append_events(&batch)?;
    writeln!(out, "ingested events in batches of 10,000: {}", rate(events, t))?;

    train(&store, &mut *out, "trained")?;

    let probe = 7u64;
    let t = Instant::now();
    let similar = store.knn(&Query::item(probe).k(10))?;
    writeln!(
        out,
        "\nsimilar to item {probe} (genre {}), {:.2} ms: {}/10 share its genre",
        World::genre(probe),
        t.elapsed().as_secs_f64() * 1e3,
        in_genre(&similar, World::genre(probe))
    )?;
    for h in &similar {
        writeln!(
            out,
            "  item {:>6}  genre {:>2}  cosine {:.3}",
            h.id,
            World::genre(h.id),
            h.score
        )?;
    }

    let user = 123u64;
    let favourite = World::favourite(user);
    let history = store.history(user)?;
    writeln!(
        out,
        "\nuser {user} (favourite genre {favourite}): {}, most recent {:?}",
        count(history.len() as u64, "event", "events"),
        history.iter().rev().take(5).collect::<Vec<_>>()
    )?;
    let t = Instant::now();
    let recall = store.knn(&Query::user(user).k(10))?;
    writeln!(
        out,
        "Query::user (mean of the last 2 items: what the user is into right now), {:.2} ms: {}/10 in the favourite genre",
        t.elapsed().as_secs_f64() * 1e3,
        in_genre(&recall, favourite)
    )?;
    writeln!(out, "  {:?}", recall.iter().map(|h| h.id).collect::<Vec<_>>())?;
    let taste = store.knn(&Query::user(user).recent(30).k(10))?;
    writeln!(
        out,
        "Query::user .recent(30) (the user's taste; seen items excluded): {}/10 in the favourite genre",
        in_genre(&taste, favourite)
    )?;
    let seeds = store.knn(&Query::seeds(user).k(10))?;
    writeln!(
        out,
        "Query::seeds (neighbours of the last 20 items, merged by recency): {}/10 in the favourite genre",
        in_genre(&seeds, favourite)
    )?;
    let deep = store.knn(&Query::user(user).space(DNN).k(10))?;
    writeln!(
        out,
        "Query::user in space \"{DNN}\" (the DNN's user tower over the last 50 items, then inner-product search): {}/10 in the favourite genre",
        in_genre(&deep, favourite)
    )?;
    let trending = store.knn(&Query::popular().for_user(user).k(10))?;
    writeln!(
        out,
        "Query::popular().for_user (most events in the window, seen items excluded): {}/10 in the favourite genre",
        in_genre(&trending, favourite)
    )?;
    let blended = store.knn(&three_channels(user))?;
    writeln!(
        out,
        "Query::blend of item2vec, the DNN and trending (scores normalised per channel, weighted, summed): {}/10 in the favourite genre",
        in_genre(&blended, favourite)
    )?;
    writeln!(out, "  {:?}", blended.iter().map(|h| h.id).collect::<Vec<_>>())?;

    // A service answers many users at once: one call per channel, every
    // core; the share of each user's favourite genre, averaged.
    // Users with events: one with none has nothing to recall from (a
    // user query says `UnknownUser`, which would fail the batch).
    let mut users = Vec::with_capacity(1_000);
    for user in 0..USERS {
        if users.len() == 1_000 {
            break;
        }
        if !store.history(user)?.is_empty() {
            users.push(user);
        }
    }
    writeln!(
        out,
        "\nrecall for {} per channel, each one knn_batch call (chance: 0.25/10):",
        count(users.len() as u64, "user", "users")
    )?;
    type Channel = (&'static str, fn(u64) -> Query);
    let channels: [Channel; 5] = [
        ("item2vec    Query::user(u).recent(30)", |u| Query::user(u).recent(30)),
        ("YouTube DNN Query::user(u).space(\"dnn\")", |u| {
            Query::user(u).space(DNN)
        }),
        ("trending    Query::popular().for_user(u)", |u| {
            Query::popular().for_user(u)
        }),
        ("default     Query::recommend(u)", Query::recommend),
        ("blend of the three channels", three_channels),
    ];
    for (name, query) in channels {
        let queries: Vec<Query> = users.iter().map(|u| query(*u).k(10)).collect();
        let t = Instant::now();
        let answers = store.knn_batch(&queries)?;
        let batch_ms = t.elapsed().as_secs_f64() * 1e3;
        let found: usize = users
            .iter()
            .zip(&answers)
            .map(|(u, hits)| in_genre(hits, World::favourite(*u)))
            .sum();
        writeln!(
            out,
            "  {name:<42} {:>4.1}/10 in the favourite genre; {batch_ms:>5.0} ms ({:.0} users/s)",
            found as f64 / users.len() as f64,
            users.len() as f64 / (batch_ms / 1e3)
        )?;
    }
    writeln!(
        out,
        "  (recommend's weights were chosen on MovieLens, where popularity is strong; here every genre has its own hits)"
    )?;

    // A brand-new item of the probe's genre, picked up by that genre's fans.
    let new_item = items * 10 + World::genre(probe);
    let fans: Vec<Event> = (0..USERS)
        .filter(|u| World::favourite(*u) == World::genre(probe))
        .take(40)
        .map(|u| Event::new(u, new_item, events + u))
        .collect();
    store.append_events(&fans)?;
    let provisional = store.knn(&Query::item(new_item).k(10))?;
    writeln!(
        out,
        "\nnew item {new_item} seen in {}: queryable at once with a provisional vector, {}/10 of its neighbours in genre {}",
        count(fans.len() as u64, "event", "events"),
        in_genre(&provisional, World::genre(probe)),
        World::genre(probe)
    )?;
    let more: Vec<Event> = (0..events / 10)
        .map(|i| world.event(items, events + USERS + i))
        .collect();
    store.append_events(&more)?;
    writeln!(out, "{} more, then", count(more.len() as u64, "event", "events"))?;
    train(&store, &mut *out, "  trained")?;
    let trained = store.knn(&Query::item(new_item).k(10))?;
    writeln!(
        out,
        "after the round, {}/10 of item {new_item}'s neighbours in its genre",
        in_genre(&trained, World::genre(probe))
    )?;

    writeln!(out)?;
    crate::commands::stats::print_stats(&store, None, out)?;
    let before = store.knn(&Query::user(user).k(10))?;
    drop(store);

    let t = Instant::now();
    let store = Store::open(&path, opts)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    // Until the index file is loaded (in the background) the segment is
    // searched exactly; wait so both answers come from the same index.
    store.wait_for_indexes();
    let after = store.knn(&Query::user(user).k(10))?;
    writeln!(
        out,
        "\nreopened in {open_ms:.1} ms ({} replayed); the same query gives {} results",
        count(store.recovery().replayed_bytes, "log byte", "log bytes"),
        if before == after { "identical" } else { "DIFFERENT" }
    )?;
    Ok(())
}
