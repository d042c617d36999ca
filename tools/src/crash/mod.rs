//! `ember crash-points DIR`: for each operation (open, open with replay,
//! the first open of every fixture format, compaction with and without a
//! metadata rebuild, an item2vec and a DNN round, a snapshot, a Parquet
//! import, repair, acknowledged writes), kill a child running it with
//! SIGKILL right before its Nth write, fsync, rename, create or remove,
//! for every N, then reopen the store and compare every answer with what
//! it must be.
//!
//! The points are counted by a shim preloaded into the child
//! (`kill_at.c`, built by `build.rs`): it sees every call that changes a
//! file, sled's and Faiss's included, in the order they are made. The
//! first run of an operation, with nothing killed, counts its points and
//! gives the answers it ends with; then each point N is tried on a fresh
//! copy of the base store. After the kill:
//!
//! 1. `verify` of a read-only open reports no problem (notes about
//!    leftovers that the next writable open cleans are allowed). A
//!    store that does not open is a failure, except after a killed
//!    repair, when repair run again must succeed.
//! 2. A writable open answers as the store must: unchanged for an open,
//!    compaction or snapshot; the old or the new generation for a round;
//!    the repaired store for a repair; for acknowledged writes, every
//!    acknowledged one and at most the one in flight; for an import, a
//!    whole number of its batches.
//! 3. `verify` after that open reports nothing at all.
//! 4. A snapshot's destination is absent or a complete copy, and the next
//!    snapshot to it succeeds and leaves no temporary directory behind.

mod answers;
mod scenario;
pub mod torture;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use emberdb::{Event, Store};

use answers::Answers;

/// The shim, built by `build.rs`, written next to the runs at start.
const SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kill_at.so"));

#[derive(Args, Debug)]
pub struct CrashPointsArgs {
    /// A directory for the runs (created; must not exist or be empty).
    dir: PathBuf,
    /// The operations to try (all of them by default).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(scenario::SCENARIOS))]
    only: Vec<String>,
    /// The fixture stores of older formats (the repository's
    /// tests/fixtures); without it the fixture operations are skipped.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Try every Nth point only (1: every point).
    #[arg(long, default_value_t = 1)]
    stride: u64,
    /// Keep the store of every point that failed (under DIR).
    #[arg(long)]
    keep_failures: bool,
    /// Seconds a child may run before it counts as hung.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(Args, Debug)]
pub struct ChildArgs {
    scenario: String,
    work: PathBuf,
    inputs: PathBuf,
}

/// The child: runs one operation (and is killed by the shim).
pub fn child(a: ChildArgs) -> anyhow::Result<()> {
    scenario::run(&a.scenario, &a.work, &a.inputs)
}

/// What one scenario's points gave.
#[derive(Default)]
struct Tally {
    points: u64,
    tried: u64,
    killed: u64,
    completed: u64,
    held: u64,
    kinds: BTreeMap<String, u64>,
    failures: Vec<String>,
}

pub fn run(a: CrashPointsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if a.dir.exists() && std::fs::read_dir(&a.dir)?.next().is_some() {
        bail!("{} is not empty", a.dir.display());
    }
    std::fs::create_dir_all(&a.dir)?;
    let dir = a.dir.canonicalize()?;
    let shim = dir.join("kill_at.so");
    std::fs::write(&shim, SHIM)?;
    let scenarios: Vec<String> = if a.only.is_empty() {
        scenario::SCENARIOS.iter().map(|s| s.to_string()).collect()
    } else {
        a.only.clone()
    };
    writeln!(
        out,
        "{:<20} {:>7} {:>7} {:>7} {:>9} {:>7}  points by kind",
        "operation", "points", "tried", "killed", "completed", "held"
    )?;
    let started = Instant::now();
    let mut failed = Vec::new();
    let (mut all_tried, mut all_held) = (0, 0);
    for name in &scenarios {
        if name.starts_with("fixture-") && a.fixtures.is_none() {
            writeln!(out, "{name:<20} skipped (no --fixtures)")?;
            continue;
        }
        let t = run_scenario(&a, &dir, &shim, name).with_context(|| format!("operation {name}"))?;
        let kinds: Vec<String> = t.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            out,
            "{name:<20} {:>7} {:>7} {:>7} {:>9} {:>7}  {}",
            t.points,
            t.tried,
            t.killed,
            t.completed,
            t.held,
            kinds.join(", ")
        )?;
        out.flush()?;
        all_tried += t.tried;
        all_held += t.held;
        for f in &t.failures {
            failed.push(format!("{name}: {f}"));
        }
    }
    writeln!(
        out,
        "{all_tried} points tried, {all_held} held, in {:.0} s",
        started.elapsed().as_secs_f64()
    )?;
    if !failed.is_empty() {
        for f in failed.iter().take(40) {
            writeln!(out, "FAILED {f}")?;
        }
        bail!("{} of {all_tried} crash points did not hold", failed.len());
    }
    Ok(())
}

/// A child's end.
enum Ending {
    Killed,
    Completed,
    Failed(String),
}

struct Runner<'a> {
    shim: &'a Path,
    name: &'a str,
    inputs: PathBuf,
    tmp: PathBuf,
    timeout: Duration,
}

impl Runner<'_> {
    /// Runs the operation on `work`, killed at point `kill_at` (0: never),
    /// tracing points to `trace` if given. Returns how it ended and its
    /// standard output.
    fn child(&self, work: &Path, kill_at: u64, trace: Option<&Path>) -> anyhow::Result<(Ending, String)> {
        let stderr_path = self.tmp.join("child.stderr");
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("crash-point-child")
            .arg(self.name)
            .arg(work)
            .arg(&self.inputs)
            .env("LD_PRELOAD", self.shim)
            .env("EMBER_KILL_AT", kill_at.to_string())
            .env("TMPDIR", &self.tmp)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path)?);
        match trace {
            Some(t) => cmd.env("EMBER_KILL_TRACE", t),
            None => cmd.env_remove("EMBER_KILL_TRACE"),
        };
        let mut child = cmd.spawn().context("starting the child")?;
        let mut stdout = child.stdout.take().context("the child's stdout")?;
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok((Ending::Failed("the child hung".into()), String::new()));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let stdout = reader.join().unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        let ending = if status.signal() == Some(libc_sigkill()) {
            Ending::Killed
        } else if status.success() {
            Ending::Completed
        } else {
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            Ending::Failed(format!("the child failed ({status}): {}", err.trim()))
        };
        Ok((ending, stdout))
    }
}

fn libc_sigkill() -> i32 {
    9
}

fn fresh_copy(base: &Path, work: &Path) -> anyhow::Result<()> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    let dest = scenario::snapshot_dest(work);
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    remove_snapshot_leftovers(work)?;
    scenario::copy_tree(base, work)
}

/// The `<dest>.snapshot-tmp-*` directories beside `work`'s snapshot.
fn snapshot_leftovers(work: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dest = scenario::snapshot_dest(work);
    let prefix = format!(
        "{}.snapshot-tmp-",
        dest.file_name().unwrap_or_default().to_string_lossy()
    );
    let parent = dest.parent().context("no parent")?;
    Ok(std::fs::read_dir(parent)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect())
}

fn remove_snapshot_leftovers(work: &Path) -> anyhow::Result<()> {
    for d in snapshot_leftovers(work)? {
        std::fs::remove_dir_all(d)?;
    }
    Ok(())
}

/// Opens `path` for writing, reads its answers, closes it.
fn answers_of(path: &Path, scenario: &str) -> anyhow::Result<Answers> {
    let store = Store::open(path, scenario::options_for(scenario))?;
    let answers = Answers::read(&store)?;
    drop(store);
    Ok(answers)
}

/// The problems (and notes) a read-only `verify` reports.
fn verify_read_only(path: &Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let store = Store::open_read_only(path)?;
    let report = store.verify()?;
    Ok((report.problems, report.notes))
}

/// What a scenario's store must answer after a kill.
struct Expected {
    /// What it answers when the operation did not happen (None: the
    /// store did not open before it: repair).
    before: Option<Answers>,
    /// What it answers after the operation completed.
    after: Answers,
    /// Answers of prefixes of `ingest`'s writes or the import's events,
    /// computed when first needed.
    prefixes: HashMap<usize, Answers>,
}

fn run_scenario(a: &CrashPointsArgs, dir: &Path, shim: &Path, name: &str) -> anyhow::Result<Tally> {
    let sdir = dir.join(name);
    let base = sdir.join("base");
    let runner = Runner {
        shim,
        name,
        inputs: sdir.join("inputs"),
        tmp: sdir.join("tmp"),
        timeout: Duration::from_secs(a.timeout),
    };
    std::fs::create_dir_all(&runner.tmp)?;
    scenario::build(name, &base, &runner.inputs, a.fixtures.as_deref())?;

    // The run that counts the points and gives the answers after.
    let counted = sdir.join("counted");
    fresh_copy(&base, &counted)?;
    let trace = sdir.join("trace.txt");
    let (ending, _) = runner.child(&counted, 0, Some(&trace))?;
    if let Ending::Failed(why) = ending {
        bail!("the operation failed with nothing killed: {why}");
    }
    let mut tally = Tally::default();
    for line in std::fs::read_to_string(&trace)?.lines() {
        tally.points += 1;
        let kind = line.split(' ').nth(1).unwrap_or("?").to_string();
        *tally.kinds.entry(kind).or_default() += 1;
    }
    let mut expected = Expected {
        before: None,
        after: answers_of(&counted, name)?,
        prefixes: HashMap::new(),
    };
    if !name.starts_with("repair-") {
        let before = sdir.join("before");
        fresh_copy(&base, &before)?;
        expected.before = Some(answers_of(&before, name)?);
    }
    let changes_answers = ["round-", "repair-", "ingest", "parquet-import"]
        .iter()
        .any(|p| name.starts_with(p));
    if !changes_answers {
        let diff = expected
            .after
            .differences(expected.before.as_ref().context("before")?, None);
        if !diff.is_empty() {
            bail!("the operation changed the store's answers: {}", diff.join("; "));
        }
    }

    let work = sdir.join("work");
    let mut n = 1;
    while n <= tally.points {
        tally.tried += 1;
        fresh_copy(&base, &work)?;
        let (ending, stdout) = runner.child(&work, n, None)?;
        let outcome = match ending {
            Ending::Failed(why) => Err(vec![why]),
            ending => {
                match ending {
                    Ending::Killed => tally.killed += 1,
                    _ => tally.completed += 1,
                }
                check(name, &base, &work, &stdout, &mut expected)
            }
        };
        match outcome {
            Ok(()) => tally.held += 1,
            Err(problems) => {
                let kind = tally_kind(&trace, n);
                tally
                    .failures
                    .push(format!("point {n} ({kind}): {}", problems.join("; ")));
                if a.keep_failures {
                    let kept = sdir.join(format!("failed-{n}"));
                    let _ = std::fs::rename(&work, &kept);
                }
            }
        }
        n += a.stride.max(1);
    }
    for p in [&work, &counted, &sdir.join("before")] {
        if p.exists() {
            std::fs::remove_dir_all(p)?;
        }
    }
    Ok(tally)
}

/// The kind and path of point `n` in the counting run's trace.
fn tally_kind(trace: &Path, n: u64) -> String {
    std::fs::read_to_string(trace)
        .ok()
        .and_then(|t| {
            t.lines()
                .nth(n as usize - 1)
                .map(|l| l.split_once(' ').map_or("", |x| x.1).to_string())
        })
        .unwrap_or_default()
}

/// The checks after a kill (see the module docs).
fn check(name: &str, base: &Path, work: &Path, stdout: &str, expected: &mut Expected) -> Result<(), Vec<String>> {
    let fail = |what: &str, e: anyhow::Error| vec![format!("{what}: {e:#}")];
    // 1. What a person would run first after a crash.
    match verify_read_only(work) {
        Ok((problems, _notes)) if problems.is_empty() => {}
        Ok((problems, _)) => return Err(problems.into_iter().map(|p| format!("verify: {p}")).collect()),
        Err(e) if name.starts_with("repair-") => {
            if let Err(again) = Store::repair(work) {
                return Err(vec![format!(
                    "the store does not open ({e:#}) and repair fails again: {again:#}"
                )]);
            }
        }
        Err(e) => return Err(fail("the store does not open read-only", e)),
    }
    if name == "snapshot" {
        let dest = scenario::snapshot_dest(work);
        if dest.exists() {
            let got = Store::open_read_only(&dest)
                .map_err(anyhow::Error::from)
                .and_then(|s| Answers::read(&s));
            match got {
                Ok(got) => {
                    let diff = got.differences(expected.before.as_ref().unwrap_or(&expected.after), None);
                    if !diff.is_empty() {
                        return Err(diff.into_iter().map(|d| format!("the snapshot: {d}")).collect());
                    }
                }
                Err(e) => return Err(fail("the snapshot does not open", e)),
            }
        }
    }
    // 2. The answers.
    let got = answers_of(work, name).map_err(|e| fail("the store does not open", e))?;
    let diff = match name {
        "ingest" => {
            let acked = stdout.lines().filter(|l| l.starts_with("ACK ")).count();
            let a = prefix(expected, base, name, acked)
                .map_err(|e| fail("prefix", e))?
                .clone();
            let d = got.differences(&a, None);
            if d.is_empty() || acked == scenario::ingest_writes().len() {
                d
            } else {
                let b = prefix(expected, base, name, acked + 1).map_err(|e| fail("prefix", e))?;
                let d2 = got.differences(b, None);
                if d2.is_empty() {
                    d2
                } else {
                    d
                }
            }
        }
        "parquet-import" => {
            let before = expected.before.as_ref().map(total_events).unwrap_or(0);
            let added = total_events(&got).saturating_sub(before);
            if !added.is_multiple_of(scenario::IMPORT_BATCH) && added != scenario::import_events().len() {
                vec![format!("{added} events imported: not a whole number of batches")]
            } else {
                let p = prefix(expected, base, name, added).map_err(|e| fail("prefix", e))?;
                got.differences(p, None)
            }
        }
        _ if name.starts_with("round-") => got.differences(&expected.after, expected.before.as_ref()),
        _ => got.differences(&expected.after, None),
    };
    if !diff.is_empty() {
        return Err(diff);
    }
    // 3. Nothing left over once a writable open has run.
    match verify_read_only(work) {
        Ok((problems, notes)) if problems.is_empty() && notes.is_empty() => {}
        Ok((problems, notes)) => {
            return Err(problems
                .into_iter()
                .chain(notes)
                .map(|p| format!("verify after reopening: {p}"))
                .collect())
        }
        Err(e) => return Err(fail("verify after reopening", e)),
    }
    // 4. The next snapshot to the same destination.
    if name == "snapshot" {
        let dest = scenario::snapshot_dest(work);
        if !dest.exists() {
            let store = Store::open(work, scenario::options_for(name)).map_err(|e| fail("open", e.into()))?;
            store
                .snapshot(&dest)
                .map_err(|e| fail("the next snapshot to the same destination", e.into()))?;
        }
        match snapshot_leftovers(work) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => return Err(vec![format!("snapshot leftovers remain: {left:?}")]),
            Err(e) => return Err(fail("listing", e)),
        }
    }
    Ok(())
}

fn total_events(a: &Answers) -> usize {
    a.histories.values().map(Vec::len).sum()
}

/// The answers of the base store after the first `k` of the operation's
/// writes (`ingest`) or imported events (`parquet-import`).
fn prefix<'e>(expected: &'e mut Expected, base: &Path, name: &str, k: usize) -> anyhow::Result<&'e Answers> {
    if let std::collections::hash_map::Entry::Vacant(slot) = expected.prefixes.entry(k) {
        let scratch = base.with_file_name("prefix");
        fresh_copy(base, &scratch)?;
        {
            let store = Store::open(&scratch, scenario::options_for(name))?;
            if name == "ingest" {
                for w in scenario::ingest_writes().iter().take(k) {
                    w.apply(&store)?;
                }
            } else {
                let events: Vec<Event> = scenario::import_events().into_iter().take(k).collect();
                for batch in events.chunks(scenario::IMPORT_BATCH) {
                    store.append_events(batch)?;
                }
            }
        }
        let answers = answers_of(&scratch, name)?;
        std::fs::remove_dir_all(&scratch)?;
        slot.insert(answers);
    }
    Ok(&expected.prefixes[&k])
}
