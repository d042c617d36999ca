//! The operations `ember crash-points` kills, and the stores they start
//! from. Each scenario builds a base store once; a child process
//! (`ember crash-point-child`) runs the operation on a copy of it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use emberdb::{
    DnnOptions, Durability, Event, ExportOptions, ImportOptions, Metric, Options, SpaceSpec, Store, TrainOptions,
};

pub const DIM: usize = 8;
const ITEMS: u64 = 320;
const USERS: u64 = 40;

/// The operations, by name.
pub const SCENARIOS: &[&str] = &[
    "open",
    "replay",
    "fixture-v1-host",
    "fixture-v1-trained",
    "fixture-v2-host",
    "fixture-v2-trained",
    "fixture-v3-host",
    "fixture-v3-trained",
    "fixture-v5-host",
    "fixture-v5-trained",
    "compact",
    "compact-rebuild",
    "merge-runs",
    "round-item2vec",
    "round-dnn",
    "snapshot",
    "parquet-import",
    "repair-lost",
    "repair-damaged",
    "ingest",
];

/// The options of every scenario store but the fixtures: small segments
/// and log files, so that an operation crosses seals, rotations and
/// checkpoints; indexes from 32 rows, so index files are written too.
pub fn options() -> Options {
    let train = TrainOptions::default()
        .epochs(1)
        .incremental_epochs(1)
        .threads(1)
        .seed(7);
    let dnn = DnnOptions {
        hidden: vec![16],
        epochs: 1,
        incremental_epochs: 1,
        threads: 1,
        seed: 7,
        ..DnnOptions::default()
    };
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Sync)
        .segment_rows(64)
        .flat_below(32)
        .wal_file_bytes(16 * 1024)
        .checkpoint_wal_bytes(64 * 1024)
        .history_len(1_000)
        .space("i2v", SpaceSpec::item2vec(DIM).train_options(train))
        .space("dnn", SpaceSpec::youtube_dnn(DIM).dnn_options(dnn))
}

/// The options a scenario's store is opened with.
pub fn options_for(scenario: &str) -> Options {
    if scenario.starts_with("fixture-") {
        Options::existing()
    } else if scenario == "merge-runs" {
        // Merges run in the child's own thread, where the points are
        // counted, not in the background.
        options().merge_threads(0)
    } else if scenario == "ingest" {
        // The recent behaviour goes out as runs every few writes, between
        // checkpoints: those flushes are killed at every write too.
        options().recent_bytes(8 << 10)
    } else {
        options()
    }
}

/// The vector written for `id` (version `v`: rewrites differ).
pub fn vector(id: u64, v: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|j| ((id * 13 + j * 7 + v * 5) % 17) as f32 - 8.0 + (v as f32) * 0.01)
        .collect()
}

/// Deterministic events: `n` of them from `first_ts` on.
fn events(n: u64, first_ts: u64, salt: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let x = (i + salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            Event::new((x >> 20) % USERS, (x >> 40) % ITEMS, first_ts + i).with_weight(1.0 + (i % 5) as f32)
        })
        .collect()
}

/// The events of `parquet-import`'s file, in the file's order (by user,
/// then oldest first, as `export_parquet` writes them).
pub fn import_events() -> Vec<Event> {
    let mut e = events(600, 1_000_000, 99);
    e.sort_by_key(|e| (e.user, e.ts));
    e
}

/// Rows per batch of `parquet-import` (each batch is one log record).
pub const IMPORT_BATCH: usize = 100;

/// One write of `ingest`'s fixed sequence.
pub enum Write {
    Events(Vec<Event>),
    Upsert(u64, Vec<f32>),
    Delete(u64),
    Attributes(u64, Vec<(String, String)>),
    Features(u64, Vec<(String, String)>),
}

impl Write {
    pub fn apply(&self, store: &Store) -> anyhow::Result<()> {
        let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
        match self {
            Write::Events(e) => store.append_events(e)?,
            Write::Upsert(id, v) => store.upsert(*id, v)?,
            Write::Delete(id) => {
                store.delete(*id)?;
            }
            Write::Attributes(id, a) => {
                let a = pairs(a);
                let refs: Vec<(&str, &str)> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                store.set_attributes(*id, &refs)?
            }
            Write::Features(user, f) => {
                let f = pairs(f);
                let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                store.set_user_features(*user, &refs)?
            }
        }
        Ok(())
    }
}

/// `ingest`'s writes, in order.
pub fn ingest_writes() -> Vec<Write> {
    let mut out = Vec::new();
    for i in 0..40u64 {
        out.push(match i % 5 {
            0 => Write::Events(events(30, 2_000_000 + i * 100, i)),
            1 => Write::Upsert(400 + i, vector(400 + i, 3)),
            2 => Write::Upsert(i * 7 % ITEMS, vector(i, 4)),
            3 => {
                if i % 10 == 3 {
                    Write::Delete(i * 11 % ITEMS)
                } else {
                    Write::Attributes(
                        i,
                        vec![("genre".into(), format!("g{}", i % 3)), ("year".into(), "1999".into())],
                    )
                }
            }
            _ => Write::Features(
                i % USERS,
                vec![("gender".into(), "F".into()), ("age".into(), format!("{i}"))],
            ),
        });
    }
    out
}

/// A store with every kind of data: host vectors over several sealed
/// segments (some rewritten, so with dead rows), a trained item2vec and a
/// YouTube DNN space after one round, events, user features, item
/// attributes and deleted items. `tail` leaves writes after the last
/// checkpoint, in the log only (the store is dropped without one).
fn build_rich(dir: &Path, tail: bool, extra_dead: u64) -> anyhow::Result<()> {
    let store = Store::open(dir, options())?;
    for id in 0..ITEMS {
        store.upsert(id, &vector(id, 0))?;
    }
    for chunk in events(2_400, 1, 0).chunks(60) {
        store.append_events(chunk)?;
    }
    for user in 0..USERS {
        let gender = if user % 2 == 0 { "F" } else { "M" };
        store.set_user_features(user, &[("gender", gender), ("occupation", &format!("o{}", user % 7))])?;
    }
    for item in 0..ITEMS / 2 {
        store.set_attributes(
            item,
            &[
                ("genre", &format!("g{}", item % 4)),
                ("year", &format!("{}", 1990 + item % 10)),
            ],
        )?;
    }
    // Rewrites of the first segment's rows: dead rows for compaction.
    for id in 0..20 {
        store.upsert(id, &vector(id, 1))?;
    }
    for id in (25..ITEMS).step_by(37) {
        store.delete(id)?;
    }
    for id in 0..extra_dead {
        store.space("default")?.delete(100 + id)?;
    }
    store.train()?;
    store.wait_for_indexes();
    for chunk in events(300, 10_000, 1).chunks(50) {
        store.append_events(chunk)?;
    }
    store.flush()?;
    if tail {
        for id in 0..30 {
            store.upsert(ITEMS + id, &vector(ITEMS + id, 2))?;
        }
        store.append_events(&events(100, 20_000, 2))?;
        store.delete(7)?;
        store.set_attributes(3, &[("genre", "late")])?;
        store.close_without_checkpoint();
    }
    Ok(())
}

/// Eight more checkpoints, each adding a run of events, of features and
/// of attributes, none merged: what `merge-runs` merges.
fn add_runs(dir: &Path) -> anyhow::Result<()> {
    let store = Store::open(dir, options_for("merge-runs"))?;
    for round in 0..8u64 {
        store.append_events(&events(40, 30_000 + round * 100, 3 + round))?;
        let user = round % USERS;
        store.set_user_features(user, &[("gender", "X"), ("round", &round.to_string())])?;
        store.set_attributes(round * 3, &[("genre", &format!("r{round}"))])?;
        store.flush()?;
    }
    let runs = store.stats()?.runs;
    if runs.event_runs < 8 || runs.feature_runs < 4 || runs.attribute_runs < 4 {
        bail!("the merge-runs base holds too few runs: {runs:?}");
    }
    Ok(())
}

pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Builds `scenario`'s base store at `base`, and its inputs under `inputs`.
pub fn build(scenario: &str, base: &Path, inputs: &Path, fixtures: Option<&Path>) -> anyhow::Result<()> {
    std::fs::create_dir_all(inputs)?;
    match scenario {
        "open" | "compact" | "round-item2vec" | "round-dnn" | "snapshot" | "parquet-import" | "ingest" => {
            build_rich(base, false, 0)?
        }
        "replay" => build_rich(base, true, 0)?,
        "merge-runs" => {
            build_rich(base, false, 0)?;
            add_runs(base)?
        }
        "compact-rebuild" => build_rich(base, false, 40)?,
        "repair-lost" | "repair-damaged" => {
            build_rich(base, true, 0)?;
            let meta = base.join("meta");
            if scenario == "repair-lost" {
                std::fs::remove_dir_all(&meta)?;
            } else {
                let db = std::fs::read_dir(&meta)?
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .find(|p| p.is_dir())
                    .context("no metadata database")?
                    .join("db");
                let len = std::fs::metadata(&db)?.len();
                std::fs::OpenOptions::new().write(true).open(&db)?.set_len(len / 3)?;
            }
        }
        name if name.starts_with("fixture-") => {
            let Some(fixtures) = fixtures else {
                bail!("{name} needs --fixtures (the repository's tests/fixtures)");
            };
            copy_tree(&fixtures.join(&name["fixture-".len()..]), base)?
        }
        other => bail!("unknown scenario {other:?}; known: {}", SCENARIOS.join(", ")),
    }
    if scenario == "parquet-import" {
        let side = inputs.join("side");
        let store = Store::open(&side, Options::new(DIM))?;
        store.append_events(&import_events())?;
        let opts = ExportOptions {
            neighbours: 0,
            row_group_rows: IMPORT_BATCH,
            ..ExportOptions::default()
        };
        store.export_parquet(inputs.join("export"), &opts)?;
    }
    Ok(())
}

/// Where `snapshot` writes its copy of the store at `work`.
pub fn snapshot_dest(work: &Path) -> PathBuf {
    let mut name = work.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".snap");
    work.with_file_name(name)
}

/// The child's part: runs `scenario`'s operation on the store at `work`.
/// `ingest` prints `ACK i` after its write `i` returned.
pub fn run(scenario: &str, work: &Path, inputs: &Path) -> anyhow::Result<()> {
    if scenario.starts_with("repair-") {
        Store::repair(work)?;
        return Ok(());
    }
    let store = Store::open(work, options_for(scenario))?;
    match scenario {
        "compact" | "compact-rebuild" => {
            store.compact()?;
        }
        "merge-runs" => {
            let merged = store.merge_runs()?;
            if merged == 0 {
                bail!("nothing to merge in the base store");
            }
        }
        "round-item2vec" => {
            store.space("i2v")?.train()?;
        }
        "round-dnn" => {
            store.space("dnn")?.train()?;
        }
        "snapshot" => {
            store.snapshot(snapshot_dest(work))?;
        }
        "parquet-import" => {
            let opts = ImportOptions {
                batch_rows: IMPORT_BATCH,
                ..ImportOptions::default()
            };
            store.import_events_parquet(inputs.join("export/events.parquet"), &opts, &|_| {})?;
        }
        "ingest" => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            for (i, write) in ingest_writes().iter().enumerate() {
                write.apply(&store)?;
                writeln!(out, "ACK {i}")?;
                out.flush()?;
            }
        }
        _ => {}
    }
    drop(store);
    Ok(())
}
