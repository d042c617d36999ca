//! `ember torture DIR --kills N`: the SIGKILL loop against this very
//! binary. A child (`ember torture-child`, hidden) opens the store and runs
//! mixed operations (upserts, deletes, event batches, training rounds of a
//! trained space, compactions, flushes), printing each write's intent
//! before the call and its acknowledgement after it returns; the parent
//! kills it with SIGKILL at a random moment, reopens the store itself, and
//! checks every acknowledged write against its model of what must be
//! there. At most the one write in flight at the kill may or may not have
//! landed. `verify` must be clean after every kill.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use emberdb::{Durability, Event, Metric, Options, SpaceSpec, Store, TrainOptions};
use rand::{Rng, SeedableRng};

use crate::input::count;

const DIM: usize = 8;
const ITEMS: u64 = 400;
const USERS: u64 = 40;
const TRAINED: &str = "i2v";
const HISTORY_LEN: usize = 1_000;

#[derive(Args, Debug)]
pub struct TortureArgs {
    /// Where to create the store (must not exist, or be empty).
    dir: PathBuf,
    /// How many times the writing child is killed with SIGKILL.
    #[arg(long, default_value_t = 200)]
    kills: u64,
    /// Seeds the schedule of operations and kills (the run is random but
    /// repeatable in what it asks for).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The longest a child runs before it is killed, in milliseconds.
    #[arg(long, default_value_t = 400)]
    max_ms: u64,
}

#[derive(Args, Debug)]
pub struct ChildArgs {
    dir: PathBuf,
    #[arg(long)]
    seed: u64,
    /// Item values written by this child are tagged with this round.
    #[arg(long)]
    round: u64,
}

fn options() -> Options {
    let train = TrainOptions::default().epochs(1).incremental_epochs(1).threads(1);
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Buffered)
        .segment_rows(128)
        .history_len(HISTORY_LEN)
        .wal_file_bytes(16 * 1024)
        .space(TRAINED, SpaceSpec::item2vec(DIM).train_options(train))
}

/// The vector written for `id` in `round` (its first component carries
/// both, so a stale or foreign row is told apart).
fn vector(id: u64, round: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM).map(|j| ((id * 7 + j as u64 * 3) % 11) as f32 + 1.0).collect();
    v[0] = (round * 1_000 + id) as f32;
    v
}

/// The child: writes until killed. Lines: `W <op>` before a call, `A`
/// after it returned Ok. Ops: `U id round`, `D id`, `E user item ts` (one
/// event per line, a whole batch between `W` and `A`), `T`, `C`, `F`.
pub fn child(a: ChildArgs) -> anyhow::Result<()> {
    let store = Store::open(&a.dir, options()).context("child: cannot open the store")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut ts = a.round * 1_000_000;
    loop {
        let roll = rng.gen_range(0..100);
        match roll {
            0..=44 => {
                let id = rng.gen_range(0..ITEMS);
                writeln!(out, "W U {id} {}", a.round)?;
                out.flush()?;
                store.upsert(id, &vector(id, a.round))?;
            }
            45..=59 => {
                let id = rng.gen_range(0..ITEMS);
                writeln!(out, "W D {id}")?;
                out.flush()?;
                store.delete(id)?;
            }
            60..=93 => {
                let n = rng.gen_range(1..20);
                let mut batch = Vec::with_capacity(n);
                writeln!(out, "W E")?;
                for _ in 0..n {
                    ts += 1;
                    let e = Event::new(rng.gen_range(0..USERS), rng.gen_range(0..ITEMS), ts);
                    writeln!(out, "E {} {} {}", e.user, e.item, e.ts)?;
                    batch.push(e);
                }
                out.flush()?;
                store.append_events(&batch)?;
            }
            94..=95 => {
                writeln!(out, "W T")?;
                out.flush()?;
                store.space(TRAINED)?.train()?;
            }
            96..=97 => {
                writeln!(out, "W C")?;
                out.flush()?;
                store.compact()?;
            }
            _ => {
                writeln!(out, "W F")?;
                out.flush()?;
                store.flush()?;
            }
        }
        writeln!(out, "A")?;
        out.flush()?;
    }
}

/// What must be in the store: each id's last acknowledged value (None:
/// deleted), each user's acknowledged events in order.
#[derive(Default)]
struct Model {
    items: BTreeMap<u64, Option<u64>>,
    histories: HashMap<u64, Vec<u64>>,
    acknowledged: u64,
}

/// A write the child started and may not have finished.
enum InFlight {
    Upsert(u64, u64),
    Delete(u64),
    Events(Vec<(u64, u64)>),
    Other,
}

impl Model {
    fn apply(&mut self, op: &InFlight) {
        match op {
            InFlight::Upsert(id, round) => {
                self.items.insert(*id, Some(*round));
            }
            InFlight::Delete(id) => {
                self.items.insert(*id, None);
            }
            InFlight::Events(events) => {
                for (user, item) in events {
                    self.histories.entry(*user).or_default().push(*item);
                }
            }
            InFlight::Other => {}
        }
        self.acknowledged += 1;
    }
}

/// Reads the child's lines into the model; returns the write in flight
/// when the output ended (killed between `W` and `A`).
fn read_child(lines: impl BufRead, model: &mut Model) -> anyhow::Result<Option<InFlight>> {
    let mut pending: Option<InFlight> = None;
    for line in lines.lines() {
        let line = line?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> anyhow::Result<u64> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .with_context(|| format!("child wrote {line:?}"))
        };
        match fields.first().copied() {
            Some("W") => {
                pending = Some(match fields.get(1).copied() {
                    Some("U") => InFlight::Upsert(num(2)?, num(3)?),
                    Some("D") => InFlight::Delete(num(2)?),
                    Some("E") => InFlight::Events(Vec::new()),
                    _ => InFlight::Other,
                })
            }
            Some("E") => {
                if let Some(InFlight::Events(events)) = pending.as_mut() {
                    events.push((num(1)?, num(2)?));
                }
            }
            Some("A") => {
                if let Some(op) = pending.take() {
                    model.apply(&op);
                }
            }
            _ => {}
        }
    }
    Ok(pending)
}

/// Checks the reopened store against the model (the write in flight may
/// have landed or not); adopts the in-flight write into the model if it
/// did. Returns how many acknowledged facts were checked.
fn check(store: &Store, model: &mut Model, in_flight: Option<InFlight>) -> anyhow::Result<(u64, bool)> {
    let mut checked = 0;
    let mut landed = false;
    let landed_value = |id: u64| -> anyhow::Result<Option<u64>> {
        Ok(store.get(id)?.map(|v| (v[0] as u64).saturating_sub(id) / 1_000))
    };
    // The in-flight write: adopt what the store says about it.
    match &in_flight {
        Some(InFlight::Upsert(id, round)) if landed_value(*id)? == Some(*round) => {
            model.items.insert(*id, Some(*round));
            landed = true;
        }
        Some(InFlight::Delete(id)) if store.get(*id)?.is_none() => {
            landed = model.items.get(id).is_some_and(|v| v.is_some());
            model.items.insert(*id, None);
        }
        Some(InFlight::Events(events)) if !events.is_empty() => {
            // A batch is one log record: all of it landed or none. Its
            // first user's history says which.
            let (user, _) = events[0];
            let mut with_batch = model.histories.get(&user).cloned().unwrap_or_default();
            with_batch.extend(events.iter().filter(|(u, _)| *u == user).map(|(_, i)| *i));
            let kept = &with_batch[with_batch.len().saturating_sub(HISTORY_LEN)..];
            if store.history(user)? == kept {
                for (user, item) in events {
                    model.histories.entry(*user).or_default().push(*item);
                }
                landed = true;
            }
        }
        _ => {}
    }
    for (&id, &value) in &model.items {
        let found = landed_value(id)?;
        if found != value {
            bail!("item {id}: acknowledged {value:?} (round), found {found:?}");
        }
        checked += 1;
    }
    for (&user, items) in &model.histories {
        // The store keeps each user's last `HISTORY_LEN` items.
        let found = store.history(user)?;
        let kept = &items[items.len().saturating_sub(HISTORY_LEN)..];
        if found != kept {
            bail!(
                "user {user}: the last {} acknowledged events differ from the store's {}",
                kept.len(),
                found.len()
            );
        }
        checked += kept.len() as u64;
    }
    Ok((checked, landed))
}

pub fn run(a: TortureArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if a.kills == 0 {
        bail!("--kills must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find the ember binary")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let mut model = Model::default();
    if a.dir.exists() && std::fs::read_dir(&a.dir)?.next().is_some() {
        bail!("{} is not empty: torture starts from a new store", a.dir.display());
    }
    drop(Store::open(&a.dir, options()).context("cannot create the store")?);
    let started = Instant::now();
    let mut checked_total = 0u64;
    let mut in_flight_landed = 0u64;
    for round in 1..=a.kills {
        let mut child = Command::new(&exe)
            .args(["torture-child", path_str(&a.dir)?, "--seed"])
            .arg(rng.gen::<u64>().to_string())
            .args(["--round", &round.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the child")?;
        let stdout = child.stdout.take().context("no child stdout")?;
        let reader = std::thread::spawn(move || {
            let mut model_part = Model::default();
            let pending = read_child(BufReader::new(stdout), &mut model_part);
            (model_part, pending)
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..=a.max_ms.max(21))));
        // SIGKILL: no destructor, no flush, no checkpoint.
        let _ = child.kill();
        let status = child.wait()?;
        let (part, pending) = reader.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
        if status.code().is_some() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("round {round}: the child exited by itself ({status}): {}", err.trim());
        }
        let pending = pending?;
        let before = model.acknowledged;
        merge(&mut model, part);
        let store = Store::open(&a.dir, options()).with_context(|| format!("round {round}: reopen failed"))?;
        let (checked, landed) =
            check(&store, &mut model, pending).with_context(|| format!("round {round}: a write was lost"))?;
        in_flight_landed += u64::from(landed);
        checked_total += checked;
        let report = store.verify()?;
        if !report.problems.is_empty() {
            bail!("round {round}: verify: {}", report.problems.join("; "));
        }
        drop(store);
        if round % 20 == 0 || round == a.kills {
            writeln!(
                out,
                "kill {round}/{}: {} acknowledged so far (+{} this round), {} checked after this kill",
                a.kills,
                model.acknowledged,
                model.acknowledged - before,
                checked
            )?;
        }
    }
    writeln!(
        out,
        "{} survived in {:.1} s: {} acknowledged, {} checked in all, 0 lost; {} in flight at a kill landed; verify clean after every kill",
        count(a.kills, "kill", "kills"),
        started.elapsed().as_secs_f64(),
        count(model.acknowledged, "write", "writes"),
        count(checked_total, "fact", "facts"),
        count(in_flight_landed, "write", "writes"),
    )?;
    Ok(())
}

fn merge(model: &mut Model, part: Model) {
    for (id, value) in part.items {
        model.items.insert(id, value);
    }
    for (user, items) in part.histories {
        model.histories.entry(user).or_default().extend(items);
    }
    model.acknowledged += part.acknowledged;
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("the store's path is not UTF-8")
}
