//! The YouTube DNN in `ember eval --space-kind youtube-dnn`: its flags, its
//! space beside the item2vec one, the users' features, and its round's
//! figures (examples per second per thread, achieved GFLOP/s against the
//! matrix product's own on this machine).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use emberdb::bench_support::{measure_gemm, GemmKernel};
use emberdb::{DnnOptions, SpaceSpec, Store, TrainRequest};
use serde::Serialize;

use crate::input::{count, report_bad};

/// The DNN space's name in the evaluation store.
pub const SPACE: &str = "dnn";

/// The DNN's hyperparameters (defaults: the library's, `DnnOptions`).
#[derive(Args, Debug, Clone)]
pub struct DnnArgs {
    /// Components of the user and item vectors (default: --dim).
    #[arg(long)]
    dnn_dim: Option<usize>,
    #[arg(long)]
    dnn_epochs: Option<usize>,
    #[arg(long)]
    dnn_lr: Option<f32>,
    #[arg(long)]
    dnn_batch: Option<usize>,
    #[arg(long)]
    dnn_negatives: Option<usize>,
    /// Hidden widths before the output layer, comma separated ("256,128").
    #[arg(long)]
    dnn_hidden: Option<String>,
    #[arg(long)]
    dnn_embed: Option<usize>,
    #[arg(long)]
    dnn_feature_dim: Option<usize>,
    #[arg(long)]
    dnn_watch: Option<usize>,
    /// Items of the recent vector (0: none).
    #[arg(long)]
    dnn_recent: Option<usize>,
    #[arg(long)]
    dnn_positions: Option<usize>,
    #[arg(long, allow_hyphen_values = true)]
    dnn_sampler_exponent: Option<f64>,
    #[arg(long)]
    dnn_l2: Option<f32>,
    /// Leave the example age out of the tower's input.
    #[arg(long)]
    dnn_no_age: bool,
}

/// The DNN space's spec from the flags.
pub fn spec(a: &DnnArgs, dim: usize, seed: u64, threads: Option<usize>, features: bool) -> SpaceSpec {
    let d = DnnOptions::default();
    let hidden = a
        .dnn_hidden
        .as_deref()
        .map(|h| h.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or(d.hidden.clone());
    let options = DnnOptions {
        hidden,
        embed_dim: a.dnn_embed.unwrap_or(d.embed_dim),
        feature_dim: a.dnn_feature_dim.unwrap_or(d.feature_dim),
        watch_len: a.dnn_watch.unwrap_or(d.watch_len),
        recent_len: a.dnn_recent.unwrap_or(d.recent_len),
        positions_per_user: a.dnn_positions.unwrap_or(d.positions_per_user),
        negatives: a.dnn_negatives.unwrap_or(d.negatives),
        sampler_exponent: a.dnn_sampler_exponent.unwrap_or(d.sampler_exponent),
        batch: a.dnn_batch.unwrap_or(d.batch),
        epochs: a.dnn_epochs.unwrap_or(d.epochs),
        learning_rate: a.dnn_lr.unwrap_or(d.learning_rate),
        l2: a.dnn_l2.unwrap_or(d.l2),
        use_features: features,
        example_age: !a.dnn_no_age,
        threads: threads.unwrap_or(d.threads),
        seed,
        ..d
    };
    SpaceSpec::youtube_dnn(a.dnn_dim.unwrap_or(dim)).dnn_options(options)
}

/// Sets the users' features from `users`, if given; how many users got
/// them.
pub fn set_features(out: &mut impl Write, store: &Store, users: Option<&Path>) -> anyhow::Result<Option<usize>> {
    let Some(path) = users else {
        writeln!(
            out,
            "DNN: no --users file: the tower sees the watch vector and the example age only"
        )?;
        return Ok(None);
    };
    let (users, bad) = crate::input::users::read(path)?;
    report_bad(path, &bad, "line");
    if !bad.is_empty() {
        bail!(
            "{}; a measure over part of the users would mislead",
            count(bad.len(), "bad line", "bad lines")
        );
    }
    for (_, user, features) in &users {
        let pairs: Vec<(&str, &str)> = features.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        store.set_user_features(*user, &pairs)?;
    }
    writeln!(
        out,
        "DNN: features of {} from {}",
        count(users.len() as u64, "user", "users"),
        path.display()
    )?;
    Ok(Some(users.len()))
}

/// The figures of the DNN's round (`ember eval --json`).
#[derive(Serialize)]
pub struct DnnFigures {
    wall_seconds: f64,
    training_seconds: f64,
    epochs: usize,
    items: usize,
    examples: u64,
    steps: u64,
    loss: f64,
    examples_per_second_per_thread: f64,
    threads: usize,
    gflops: f64,
}

/// A full round of the DNN space, and its figures.
pub fn train(out: &mut impl Write, store: &Store) -> anyhow::Result<DnnFigures> {
    let started = Instant::now();
    let bar = crate::commands::store::progress(1_000, "DNN");
    let progress = |_: &str, f: f64| bar.set_position((f * 1_000.0) as u64);
    let r =
        crate::commands::store::one_report(store.train_with(&TrainRequest::full().space(SPACE).progress(&progress))?)?;
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let Some(run) = r.dnn else {
        bail!("the DNN space reported no run");
    };
    // The reference: the model's matrix product on a step-sized shape.
    let gemm = measure_gemm(GemmKernel::Packed, 256, 256, 256, 0.3);
    writeln!(
        out,
        "DNN full training: {wall:.2} s wall ({:.2} s training), {}, {}, {} in {}, loss {:.4}, {:.0} examples/s/thread on {}, {:.1} GFLOP/s in the products ({:.0}% of the {:.1} GFLOP/s the product reaches alone on one thread)",
        run.seconds,
        count(r.epochs as u64, "epoch", "epochs"),
        count(r.items as u64, "item", "items"),
        count(run.examples, "example", "examples"),
        count(run.steps, "step", "steps"),
        run.loss,
        run.examples_per_second_per_thread(),
        count(run.threads as u64, "thread", "threads"),
        run.gflops(),
        100.0 * run.gflops() / (gemm * run.threads as f64),
        gemm
    )?;
    Ok(DnnFigures {
        wall_seconds: wall,
        training_seconds: run.seconds,
        epochs: r.epochs,
        items: r.items,
        examples: run.examples,
        steps: run.steps,
        loss: run.loss,
        examples_per_second_per_thread: run.examples_per_second_per_thread(),
        threads: run.threads,
        gflops: run.gflops(),
    })
}
