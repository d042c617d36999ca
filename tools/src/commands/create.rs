//! `ember create STORE --space NAME=KIND:DIM[:METRIC] ...`: a store with
//! named spaces from the shell (item2vec, YouTube DNN and host-fed spaces
//! beside each other), or more spaces for a store that exists.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use emberdb::{Durability, Metric, Options, SpaceKind, SpaceSpec, Store, DEFAULT_SPACE};

use crate::input::count;

#[derive(Args, Debug)]
pub struct CreateArgs {
    store: PathBuf,
    /// A space, as NAME=KIND:DIM[:METRIC]: KIND is item2vec, youtube-dnn
    /// (or dnn) or host; METRIC is cosine (the default), ip or l2. Repeat
    /// for several spaces. A new store needs its default space first
    /// (`default=item2vec:64` or `default=host:384`); on a store that
    /// exists, the spaces it lacks are added (trained ones train from the
    /// events already logged at their first round) and the ones it has
    /// must match.
    #[arg(long = "space", value_name = "NAME=KIND:DIM[:METRIC]", required = true)]
    spaces: Vec<String>,
    /// sync (every write fsynced before it returns), buffered or none. The
    /// store remembers nothing of it: each open chooses.
    #[arg(long, default_value = "sync")]
    durability: String,
}

/// One `--space` argument, read.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    name: String,
    kind: SpaceKind,
    dim: usize,
    metric: Option<Metric>,
}

fn parse_space(text: &str) -> anyhow::Result<Named> {
    let usage = "expected NAME=KIND:DIM[:METRIC], like text=host:384:cosine";
    let Some((name, rest)) = text.split_once('=') else {
        bail!("--space {text:?}: {usage}");
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if name.is_empty() || !(2..=3).contains(&parts.len()) {
        bail!("--space {text:?}: {usage}");
    }
    let kind = match parts[0] {
        "item2vec" => SpaceKind::Item2vec,
        "youtube-dnn" | "youtube_dnn" | "dnn" => SpaceKind::YoutubeDnn,
        "host" => SpaceKind::Host,
        other => bail!("--space {text:?}: unknown kind {other:?} (item2vec, youtube-dnn or host)"),
    };
    let dim = parts[1].parse::<usize>().ok().filter(|d| *d > 0).with_context(|| {
        format!(
            "--space {text:?}: the dimension {:?} is not a positive number",
            parts[1]
        )
    })?;
    let metric = match parts.get(2) {
        None => None,
        Some(&"cosine") => Some(Metric::Cosine),
        Some(&("ip" | "inner-product" | "inner_product")) => Some(Metric::InnerProduct),
        Some(&"l2") => Some(Metric::L2),
        Some(other) => bail!("--space {text:?}: unknown metric {other:?} (cosine, ip or l2)"),
    };
    if kind == SpaceKind::YoutubeDnn && metric.is_some_and(|m| m != Metric::InnerProduct) {
        bail!("--space {text:?}: a YouTube DNN space is searched by inner product (its user and item vectors are trained for it); leave the metric out");
    }
    Ok(Named {
        name: name.to_string(),
        kind,
        dim,
        metric,
    })
}

fn spec_of(space: &Named) -> SpaceSpec {
    let spec = match space.kind {
        SpaceKind::Host => SpaceSpec::host(space.dim),
        SpaceKind::Item2vec => SpaceSpec::item2vec(space.dim),
        SpaceKind::YoutubeDnn => SpaceSpec::youtube_dnn(space.dim),
    };
    match space.metric {
        Some(metric) if space.kind != SpaceKind::YoutubeDnn => spec.metric(metric),
        _ => spec,
    }
}

/// The options of a new store with `spaces`, the default one first.
fn new_store_options(spaces: &[Named]) -> anyhow::Result<Options> {
    let Some(default) = spaces.iter().find(|s| s.name == DEFAULT_SPACE) else {
        bail!("a new store needs its default space: add --space {DEFAULT_SPACE}=item2vec:DIM (trained from events) or --space {DEFAULT_SPACE}=host:DIM (vectors you bring)");
    };
    let mut opts = match default.kind {
        SpaceKind::Item2vec => Options::trained(default.dim),
        SpaceKind::Host => Options::new(default.dim),
        SpaceKind::YoutubeDnn => bail!(
            "the default space is item2vec or host; give the YouTube DNN space a name of its own (--space dnn=youtube-dnn:{})",
            default.dim
        ),
    };
    if let Some(metric) = default.metric {
        opts = opts.metric(metric);
    }
    for space in spaces.iter().filter(|s| s.name != DEFAULT_SPACE) {
        opts = opts.space(space.name.clone(), spec_of(space));
    }
    Ok(opts)
}

/// Refuses a space named twice, before anything is created.
fn refuse_repeats(spaces: &[Named]) -> anyhow::Result<()> {
    for (i, space) in spaces.iter().enumerate() {
        if spaces[..i].iter().any(|s| s.name == space.name) {
            bail!("--space {:?} is given twice", space.name);
        }
    }
    Ok(())
}

/// Refuses a space the store has with another kind, dimension or metric.
fn refuse_mismatches(store: &Store, spaces: &[Named]) -> anyhow::Result<()> {
    for asked in spaces {
        let Ok(have) = store.space(&asked.name) else {
            continue;
        };
        let metric_differs = asked.metric.is_some_and(|m| m != have.metric());
        if have.kind() != asked.kind || have.dim() != asked.dim || metric_differs {
            bail!(
                "the store has space {:?} as {}:{}:{}; it cannot become {}:{}{} (nothing changed)",
                asked.name,
                have.kind().name(),
                have.dim(),
                metric_name(have.metric()),
                asked.kind.name(),
                asked.dim,
                asked.metric.map_or(String::new(), |m| format!(":{}", metric_name(m))),
            );
        }
    }
    Ok(())
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "cosine",
        Metric::InnerProduct => "ip",
        Metric::L2 => "l2",
    }
}

fn durability(text: &str) -> anyhow::Result<Durability> {
    Ok(match text {
        "sync" => Durability::Sync,
        "buffered" => Durability::Buffered,
        "none" => Durability::None,
        other => bail!("--durability {other:?}: sync, buffered or none"),
    })
}

pub fn create(a: CreateArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let spaces = a
        .spaces
        .iter()
        .map(|s| parse_space(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    refuse_repeats(&spaces)?;
    let durability = durability(&a.durability)?;
    let exists = a.store.join("meta").is_dir();
    let store = if exists {
        let current = Store::open_read_only(&a.store).context("cannot open the store")?;
        refuse_mismatches(&current, &spaces)?;
        let lacking: Vec<&Named> = spaces.iter().filter(|s| current.space(&s.name).is_err()).collect();
        drop(current);
        let mut opts = Options::existing().durability(durability);
        for space in &lacking {
            opts = opts.space(space.name.clone(), spec_of(space));
        }
        let store = Store::open(&a.store, opts)?;
        writeln!(
            out,
            "store {}: added {}",
            a.store.display(),
            count(lacking.len() as u64, "space", "spaces")
        )?;
        store
    } else {
        let store = Store::open(&a.store, new_store_options(&spaces)?.durability(durability))?;
        writeln!(out, "created store {}", a.store.display())?;
        store
    };
    for space in store.spaces() {
        writeln!(
            out,
            "  space {:?}: {}, {} dimensions, {}",
            space.name(),
            space.kind().name(),
            space.dim(),
            metric_name(space.metric())
        )?;
    }
    store.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_arguments_are_read_or_refused_with_the_form() {
        assert_eq!(
            parse_space("text=host:384:cosine").unwrap(),
            Named {
                name: "text".into(),
                kind: SpaceKind::Host,
                dim: 384,
                metric: Some(Metric::Cosine)
            }
        );
        assert_eq!(parse_space("dnn=youtube-dnn:64").unwrap().kind, SpaceKind::YoutubeDnn);
        assert_eq!(parse_space("a=host:8:ip").unwrap().metric, Some(Metric::InnerProduct));
        for bad in [
            "text",
            "=host:3",
            "t=host",
            "t=host:0",
            "t=host:x",
            "t=vec:3",
            "t=host:3:dot",
            "t=host:3:l2:x",
            "d=dnn:8:cosine",
        ] {
            assert!(parse_space(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn a_new_store_needs_an_item2vec_or_host_default_space() {
        let dnn = parse_space("dnn=dnn:8").unwrap();
        assert!(new_store_options(std::slice::from_ref(&dnn)).is_err());
        assert!(new_store_options(&[parse_space("default=dnn:8").unwrap()]).is_err());
        let opts = new_store_options(&[dnn, parse_space("default=item2vec:16").unwrap()]).unwrap();
        assert_eq!(opts.dim(), 16);
        assert_eq!(opts.spaces().len(), 1);
    }
}
