//! `ember stats`: what a store holds and occupies, space by space.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use emberdb::{IndexSpec, Metric, SpaceStats, Store};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::commands::store::open_read_only;
use crate::input::count;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The store directory.
    store: PathBuf,
    /// Show only this space (all of them by default).
    #[arg(long)]
    space: Option<String>,
    /// One JSON object instead of the table: `store`, `spaces` (an array
    /// of objects, one per space shown: `name`, `kind` ("host", "item2vec",
    /// "youtube-dnn"), `dim`, `metric` ("cosine", "inner_product", "l2"),
    /// `index` (`{"type":"flat"}`, `{"type":"hnsw","m":..,"ef_construction":
    /// ..,"ef_search":..}` or `{"type":"ivf","nlist":..|null,"nprobe":..}`),
    /// `rows`, `live_rows`, `tombstones`, `sealed_segments`,
    /// `indexed_segments`, `segment_search` (array), `growing_rows`,
    /// `segment_bytes`, and `trainer`: null for a host-fed space, else
    /// `generation` (0: never trained), `items`, `rounds`,
    /// `untrained_events`, `last_round` (null unless a round ran since the
    /// store was opened, as in `ember demo`; else `full`, `new_events`,
    /// `training_seconds`, `publish_seconds`)), `wal_bytes`, `meta_bytes`,
    /// `disk_bytes`, `kernels`, `faiss_build`, `deleted_items`. Sizes are in bytes.
    #[arg(long)]
    json: bool,
}

pub fn run(a: StatsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_read_only(&a.store)?;
    if a.json {
        return print_json(&store, a.space.as_deref(), out);
    }
    print_stats(&store, a.space.as_deref(), out)
}

/// `ember stats --json`.
#[derive(Serialize)]
struct JsonStats {
    store: String,
    spaces: Vec<JsonSpace>,
    wal_bytes: u64,
    meta_bytes: u64,
    disk_bytes: u64,
    kernels: String,
    faiss_build: String,
    deleted_items: usize,
}

#[derive(Serialize)]
struct JsonSpace {
    name: String,
    kind: &'static str,
    dim: usize,
    metric: &'static str,
    index: serde_json::Value,
    rows: usize,
    live_rows: usize,
    tombstones: usize,
    sealed_segments: usize,
    indexed_segments: usize,
    segment_search: Vec<String>,
    growing_rows: usize,
    segment_bytes: u64,
    trainer: Option<JsonTrainer>,
}

#[derive(Serialize)]
struct JsonTrainer {
    generation: u64,
    items: usize,
    rounds: u64,
    untrained_events: u64,
    last_round: Option<JsonRound>,
}

#[derive(Serialize)]
struct JsonRound {
    full: bool,
    new_events: u64,
    training_seconds: f64,
    publish_seconds: f64,
}

/// The metric's name in `--json`.
pub fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "cosine",
        Metric::InnerProduct => "inner_product",
        Metric::L2 => "l2",
    }
}

/// The index spec in `--json`.
fn index_json(spec: IndexSpec) -> serde_json::Value {
    match spec {
        IndexSpec::Flat => serde_json::json!({ "type": "flat" }),
        IndexSpec::Hnsw {
            m,
            ef_construction,
            ef_search,
        } => serde_json::json!({
            "type": "hnsw",
            "m": m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
        }),
        IndexSpec::Ivf { nlist, nprobe } => serde_json::json!({
            "type": "ivf",
            "nlist": nlist,
            "nprobe": nprobe,
        }),
    }
}

fn space_json(s: &SpaceStats) -> JsonSpace {
    JsonSpace {
        name: s.name.clone(),
        kind: s.kind.name(),
        dim: s.dim,
        metric: metric_name(s.metric),
        index: index_json(s.index),
        rows: s.rows,
        live_rows: s.live_rows,
        tombstones: s.rows - s.live_rows,
        sealed_segments: s.sealed_segments,
        indexed_segments: s.indexed_segments,
        segment_search: s.segment_kinds.clone(),
        growing_rows: s.growing_rows,
        segment_bytes: s.segment_bytes,
        trainer: s.trainer.as_ref().map(|t| JsonTrainer {
            generation: t.generation,
            items: t.items,
            rounds: t.rounds,
            untrained_events: t.untrained_events,
            last_round: t.last_round.as_ref().map(|r| JsonRound {
                full: r.full,
                new_events: r.new_events,
                training_seconds: r.run.seconds,
                publish_seconds: r.publish_seconds,
            }),
        }),
    }
}

fn print_json(store: &Store, only: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
    let s = store.stats()?;
    if let Some(name) = only {
        store.space(name)?;
    }
    let json = JsonStats {
        store: store.path().display().to_string(),
        spaces: s
            .spaces
            .iter()
            .filter(|sp| only.is_none_or(|n| n == sp.name))
            .map(space_json)
            .collect(),
        wal_bytes: s.wal_bytes,
        meta_bytes: s.meta_bytes,
        disk_bytes: s.disk_bytes,
        kernels: s.kernels.to_string(),
        faiss_build: s.faiss_build.clone(),
        deleted_items: s.deleted_items,
    };
    // Formatted first, so that a write error stays an io::Error (main
    // tells a closed pipe by it).
    writeln!(out, "{}", serde_json::to_string(&json)?)?;
    Ok(())
}

pub fn print_stats(store: &Store, only: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
    let s = store.stats()?;
    if let Some(name) = only {
        store.space(name)?;
    }
    writeln!(out, "store            {}", store.path().display())?;
    writeln!(
        out,
        "spaces           {}",
        s.spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    )?;
    for space in s.spaces.iter().filter(|sp| only.is_none_or(|n| n == sp.name)) {
        print_space(space, out)?;
    }
    writeln!(
        out,
        "deleted items    {} (out of every space until undeleted)",
        s.deleted_items
    )?;
    let r = &s.runs;
    writeln!(
        out,
        "histories        {} ({}, {}) + {} in memory since the checkpoint ({} users, {})",
        count(r.event_runs as u64, "event run", "event runs"),
        count(r.event_entries, "entry", "entries"),
        HumanBytes(r.event_run_bytes),
        count(r.recent_events, "event", "events"),
        r.recent_users,
        HumanBytes(r.recent_bytes)
    )?;
    writeln!(
        out,
        "features, attrs  {} users, {} items ({} and {}, {}); {} merges wrote {} ({} now, at most {} at once)",
        s.users_with_features,
        s.items_with_attributes,
        count(r.feature_runs as u64, "feature run", "feature runs"),
        count(r.attribute_runs as u64, "attribute run", "attribute runs"),
        HumanBytes(r.keyed_run_bytes),
        r.merges,
        HumanBytes(r.merged_bytes),
        r.merges_in_flight,
        r.most_merges_at_once
    )?;
    writeln!(out, "wal files        {}", HumanBytes(s.wal_bytes))?;
    writeln!(out, "metadata         {}", HumanBytes(s.meta_bytes))?;
    writeln!(out, "on disk          {}", HumanBytes(s.disk_bytes))?;
    writeln!(out, "kernels, faiss   {}; {}", s.kernels, s.faiss_build)?;
    Ok(())
}

fn print_space(s: &SpaceStats, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "space {:?}", s.name)?;
    writeln!(out, "  kind           {}", s.kind.name())?;
    writeln!(out, "  dim, metric    {}, {:?}", s.dim, s.metric)?;
    writeln!(out, "  rows           {} ({} live)", s.rows, s.live_rows)?;
    let dead = s.rows - s.live_rows;
    writeln!(
        out,
        "  tombstones     {dead} ({:.1}% of rows; `ember compact` rewrites segments above 20%)",
        100.0 * dead as f64 / s.rows.max(1) as f64
    )?;
    writeln!(
        out,
        "  sealed         {} ({} indexed; index {:?})",
        count(s.sealed_segments as u64, "segment", "segments"),
        s.indexed_segments,
        s.index
    )?;
    if !s.segment_kinds.is_empty() {
        writeln!(out, "  segment search {}", s.segment_kinds.join(", "))?;
    }
    writeln!(out, "  growing rows   {}", s.growing_rows)?;
    writeln!(out, "  segment files  {}", HumanBytes(s.segment_bytes))?;
    if let Some(t) = &s.trainer {
        writeln!(
            out,
            "  trained        generation {}, {}, {}, {} not trained yet",
            t.generation,
            count(t.items as u64, "item", "items"),
            count(t.rounds, "round", "rounds"),
            count(t.untrained_events, "event", "events"),
        )?;
        if let Some(r) = &t.last_round {
            writeln!(
                out,
                "  last round     {}, {}, {:.2} s training + {:.2} s publishing",
                if r.full { "full" } else { "incremental" },
                count(r.new_events, "new event", "new events"),
                r.run.seconds,
                r.publish_seconds
            )?;
        }
    }
    Ok(())
}
