//! `ember demo`: the quick-start tour. A synthetic catalogue whose items
//! belong to hidden genres, users who mostly watch one or two genres, and
//! the queries a recommender would make, with what each step cost.

use std::path::PathBuf;
use std::time::Instant;

use emberdb::{Durability, Event, Metric, Options, Query, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 32;
const GENRES: u64 = 40;
const USERS: u64 = 5_000;

/// The synthetic world: item `i` is of genre `i % GENRES`.
struct World {
    centers: Vec<Vec<f32>>,
    rng: StdRng,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let centers = (0..GENRES)
            .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
            .collect();
        World { centers, rng }
    }

    fn genre(item: u64) -> u64 {
        item % GENRES
    }

    fn item_vector(&mut self, item: u64) -> Vec<f32> {
        let center = &self.centers[Self::genre(item) as usize];
        center.iter().map(|c| c + self.rng.gen_range(-0.45f32..0.45)).collect()
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
        let rank = ((self.rng.gen::<f64>().powi(3)) * per_genre as f64) as u64;
        Event::new(user, (rank.min(per_genre - 1)) * GENRES + genre, ts)
    }
}

fn rate(count: u64, since: Instant) -> String {
    let secs = since.elapsed().as_secs_f64();
    format!("{count} in {:.0} ms ({:.0}/s)", secs * 1e3, count as f64 / secs)
}

pub fn run(dir: Option<PathBuf>, items: u64, events: u64) -> emberdb::Result<()> {
    if items < GENRES {
        return Err(emberdb::Error::InvalidOptions(format!(
            "--items must be at least {GENRES}"
        )));
    }
    let temp;
    let path = match dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().map_err(|source| emberdb::Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
            temp.path().join("demo-store")
        }
    };
    let opts = Options::new(DIM)
        .metric(Metric::Cosine)
        .durability(Durability::Buffered)
        .segment_rows(8_192)
        // Small enough that the demo's sealed segments get HNSW indexes.
        .flat_below(4_096);
    println!("emberdb demo: store at {}", path.display());
    println!("  {items} items in {GENRES} hidden genres, {USERS} users, {events} events, dim {DIM}, cosine\n");

    let mut world = World::new(42);
    let store = Store::open(&path, opts.clone())?;

    let t = Instant::now();
    for item in 0..items {
        store.upsert(item, &world.item_vector(item))?;
    }
    println!("upserted item vectors: {}", rate(items, t));

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
    println!("ingested events in batches of 10,000: {}", rate(events, t));

    let probe = 7u64;
    let t = Instant::now();
    let similar = store.knn(&Query::item(probe).k(10))?;
    let same = similar
        .iter()
        .filter(|h| World::genre(h.id) == World::genre(probe))
        .count();
    println!(
        "\nsimilar to item {probe} (genre {}), exact search in {:.2} ms: {same}/10 share its genre",
        World::genre(probe),
        t.elapsed().as_secs_f64() * 1e3
    );
    for h in &similar {
        println!(
            "  item {:>6}  genre {:>2}  cosine {:.3}",
            h.id,
            World::genre(h.id),
            h.score
        );
    }

    let user = 123u64;
    let history = store.history(user)?;
    let recent: Vec<u64> = history.iter().rev().take(10).copied().collect();
    println!(
        "\nuser {user} (favourite genre {}): {} events kept, most recent {:?}",
        World::favourite(user),
        history.len(),
        recent
    );
    let mut mean = vec![0f32; DIM];
    for item in &recent {
        if let Some(v) = store.get(*item)? {
            mean.iter_mut().zip(&v).for_each(|(m, x)| *m += x);
        }
    }
    let seen: std::collections::HashSet<u64> = history.iter().copied().collect();
    let recall: Vec<_> = store
        .knn(&Query::vector(&mean).k(10 + seen.len().min(200)))?
        .into_iter()
        .filter(|h| !seen.contains(&h.id))
        .take(10)
        .collect();
    let in_favourite = recall
        .iter()
        .filter(|h| World::genre(h.id) == World::favourite(user))
        .count();
    println!("recall from the mean of those 10 items, seen items excluded: {in_favourite}/10 in the favourite genre");
    println!("  {:?}", recall.iter().map(|h| h.id).collect::<Vec<_>>());

    let t = Instant::now();
    store.wait_for_indexes();
    println!(
        "\nsealed segments indexed with HNSW in the background ({:.0} ms more after the queries above)",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let indexed = store.knn(&Query::item(probe).k(10))?;
    let agree = indexed.iter().filter(|h| similar.iter().any(|s| s.id == h.id)).count();
    println!(
        "the same similar-items query through the indexes: {:.2} ms, {agree}/10 as the exact answer",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!();
    crate::stats::print_stats(&store)?;
    let before = store.knn(&Query::item(probe).k(10))?;
    drop(store);

    let t = Instant::now();
    let store = Store::open(&path, opts)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    store.wait_for_indexes();
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let after = store.knn(&Query::item(probe).k(10))?;
    println!(
        "\nreopened in {open_ms:.1} ms ({} log bytes replayed; index files loaded in the background in {load_ms:.1} ms more); the same query gives {} results",
        store.recovery().replayed_bytes,
        if before == after { "identical" } else { "DIFFERENT" }
    );
    Ok(())
}
