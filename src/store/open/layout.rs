//! Which spaces a store has, as its metadata records them and as the
//! options ask: creating a store's layout, upgrading a format-1 store (one
//! space) in place, checking each space's fixed settings (dimension, metric,
//! kind) against the options, and adding the spaces the options name that
//! the store lacks. Whatever changed is written in one metadata batch with
//! the manifest, then flushed ([`Layout::save`]), once the spaces' files
//! opened and before the log is replayed: a format-1 store whose files
//! are damaged stays format 1, readable by the build that wrote it, and
//! no replayed seal can commit a format-2 manifest under a format-1
//! configuration.

use std::path::Path;

use crate::error::{Error, Result};
use crate::index::IndexSpec;
use crate::meta::records::{Manifest, SpaceManifest, StoredConfig, StoredSpace, StoredTrain, FORMAT_VERSION};
use crate::meta::MetaStore;
use crate::metric::Metric;
use crate::options::{Options, SpaceKind, SpaceSpec, DEFAULT_SPACE};
use crate::train::{DnnOptions, TrainOptions};

/// One space as the store will run it.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedSpace {
    pub number: u32,
    pub name: String,
    pub dim: usize,
    pub metric: Metric,
    pub kind: SpaceKind,
    pub index: IndexSpec,
    /// item2vec spaces: the options given, or the defaults.
    pub train: Option<TrainOptions>,
    /// YouTube DNN spaces: the options given, or the defaults.
    pub dnn: Option<DnnOptions>,
}

/// The spaces (by number) and the manifest to open.
pub(crate) struct Layout {
    pub spaces: Vec<ResolvedSpace>,
    pub manifest: Manifest,
    /// What to write back (one batch, then a flush) once the spaces' files
    /// opened: a new store, the format-1 upgrade, added spaces, a changed
    /// index spec or training options. None: nothing changed.
    pub changed: Option<(StoredConfig, Vec<StoredSpace>)>,
    /// The list of run files to save with the layout: a new store's (empty)
    /// or an upgraded one's (its behaviour moved out of sled).
    pub runs: Option<crate::meta::records::RunManifest>,
}

impl Layout {
    /// Writes what changed, if anything.
    pub fn save(&self, meta: &dyn MetaStore) -> Result<()> {
        if let Some((config, spaces)) = &self.changed {
            meta.save_layout(config, spaces, &self.manifest, self.runs.as_ref())?;
            meta.flush()?;
        }
        Ok(())
    }
}

fn corrupt(path: &Path, reason: String) -> Error {
    Error::Corruption {
        file: path.join("meta"),
        offset: 0,
        reason,
    }
}

fn stored_from_spec(number: u32, name: &str, spec: &SpaceSpec) -> StoredSpace {
    StoredSpace {
        number,
        name: name.to_string(),
        dim: spec.dim as u32,
        metric: spec.metric,
        kind: spec.kind,
        index: spec.index.unwrap_or_default(),
        train: stored_options(spec),
    }
}

/// A trained kind's options as stored: those given, or the defaults.
fn stored_options(spec: &SpaceSpec) -> Option<StoredTrain> {
    match spec.kind {
        SpaceKind::Host => None,
        SpaceKind::Item2vec => Some(StoredTrain::V1(spec.train.clone().unwrap_or_default())),
        SpaceKind::YoutubeDnn => Some(StoredTrain::DnnV1(spec.dnn.clone().unwrap_or_default())),
    }
}

fn config_of(default: &StoredSpace) -> StoredConfig {
    StoredConfig {
        format_version: FORMAT_VERSION,
        dim: default.dim,
        metric: default.metric,
        trained: default.kind.is_trained(),
    }
}

/// Reads, checks, creates or upgrades the layout (see the module docs);
/// the caller writes what changed with [`Layout::save`].
pub(crate) fn resolve(path: &Path, opts: &Options, meta: &dyn MetaStore) -> Result<Layout> {
    let requested: Vec<(String, SpaceSpec)> = std::iter::once((DEFAULT_SPACE.to_string(), opts.default_spec()))
        .filter(|_| !opts.from_store)
        .chain(opts.spaces.iter().cloned())
        .collect();
    // `Options::existing().index(..)` names no space but sets the default
    // space's index.
    let existing_index = (opts.from_store && opts.index_given).then_some(opts.index);
    let (mut stored, mut manifest, mut changed) = match meta.load_config()? {
        None => {
            // A new store (`open` refused `Options::existing` before this).
            let spaces: Vec<StoredSpace> = requested
                .iter()
                .enumerate()
                .map(|(n, (name, spec))| stored_from_spec(n as u32, name, spec))
                .collect();
            let manifest = Manifest {
                spaces: vec![SpaceManifest::default(); spaces.len()],
                ..Manifest::default()
            };
            (spaces, manifest, true)
        }
        Some(config) if config.format_version > FORMAT_VERSION => {
            return Err(Error::NewerFormat {
                path: path.to_path_buf(),
                found: config.format_version,
                supported: FORMAT_VERSION,
            })
        }
        Some(config) if config.format_version == 1 => {
            let manifest = meta
                .load_manifest_v1()?
                .ok_or_else(|| corrupt(path, "the configuration is there but the manifest is missing".into()))?;
            let default = StoredSpace {
                number: 0,
                name: DEFAULT_SPACE.to_string(),
                dim: config.dim,
                metric: config.metric,
                kind: if config.trained {
                    SpaceKind::Item2vec
                } else {
                    SpaceKind::Host
                },
                index: if opts.index_given {
                    opts.index
                } else {
                    IndexSpec::default()
                },
                train: config.trained.then(|| StoredTrain::V1(TrainOptions::default())),
            };
            (vec![default], manifest.upgrade(), true)
        }
        Some(config) => {
            let spaces = meta
                .load_spaces()?
                .ok_or_else(|| corrupt(path, "the configuration is there but the spaces are missing".into()))?;
            let manifest = meta
                .load_manifest()?
                .ok_or_else(|| corrupt(path, "the configuration is there but the manifest is missing".into()))?;
            // Format 2 reads as 3; saving the layout stamps 3, which
            // builds of format 2 refuse (`NewerFormat`): they would not
            // keep the log-file list or the deleted items.
            (spaces, manifest, config.format_version < FORMAT_VERSION)
        }
    };
    check_numbering(path, &stored, &manifest)?;
    // `Options::existing().metric(..)` names no space but the default
    // space's metric: one the store does not have is refused, not ignored.
    if let Some(default) = stored
        .iter()
        .find(|s| s.number == 0)
        .filter(|_| opts.from_store && opts.metric_given)
    {
        if default.metric != opts.metric {
            return Err(Error::ConfigMismatch {
                path: path.to_path_buf(),
                space: default.name.clone(),
                field: "metric",
                stored: format!("{:?}", default.metric),
                requested: format!("{:?}", opts.metric),
            });
        }
    }

    let mut spaces = Vec::with_capacity(stored.len() + requested.len());
    for space in &mut stored {
        let asked = requested
            .iter()
            .find(|(name, _)| *name == space.name)
            .map(|(_, spec)| spec);
        if let Some(spec) = asked {
            check_fixed(path, space, spec)?;
        }
        let index = asked
            .and_then(|s| s.index)
            .or(existing_index.filter(|_| space.number == 0));
        if let Some(index) = index.filter(|i| *i != space.index) {
            space.index = index;
            changed = true;
        }
        let given = asked.and_then(|s| match s.kind {
            SpaceKind::Host => None,
            SpaceKind::Item2vec => s.train.clone().map(StoredTrain::V1),
            SpaceKind::YoutubeDnn => s.dnn.clone().map(StoredTrain::DnnV1),
        });
        if let Some(train) = given.filter(|_| space.kind.is_trained()) {
            if space.train.as_ref() != Some(&train) {
                space.train = Some(train);
                changed = true;
            }
        }
        spaces.push(resolved(space));
    }
    for (name, spec) in &requested {
        if stored.iter().any(|s| s.name == *name) {
            continue;
        }
        let space = stored_from_spec(stored.len() as u32, name, spec);
        spaces.push(resolved(&space));
        stored.push(space);
        manifest.spaces.push(SpaceManifest::default());
        changed = true;
    }
    let changed = changed.then(|| (config_of(&stored[0]), stored));
    Ok(Layout {
        spaces,
        manifest,
        changed,
        runs: None,
    })
}

/// Spaces are numbered 0.. in order, the default first, one manifest entry
/// each: anything else is damage.
fn check_numbering(path: &Path, stored: &[StoredSpace], manifest: &Manifest) -> Result<()> {
    if stored.is_empty() || stored[0].name != DEFAULT_SPACE {
        return Err(corrupt(path, "the store has no default space".into()));
    }
    for (n, space) in stored.iter().enumerate() {
        if space.number as usize != n {
            return Err(corrupt(
                path,
                format!("space {:?} has number {}, expected {n}", space.name, space.number),
            ));
        }
    }
    if manifest.spaces.len() != stored.len() {
        return Err(corrupt(
            path,
            format!(
                "the manifest describes {} spaces, the configuration {}",
                manifest.spaces.len(),
                stored.len()
            ),
        ));
    }
    Ok(())
}

/// Dimension, metric and kind are fixed at a space's creation.
fn check_fixed(path: &Path, space: &StoredSpace, spec: &SpaceSpec) -> Result<()> {
    let mismatch = |field: &'static str, stored: String, requested: String| Error::ConfigMismatch {
        path: path.to_path_buf(),
        space: space.name.clone(),
        field,
        stored,
        requested,
    };
    if space.dim as usize != spec.dim {
        return Err(mismatch("dim", space.dim.to_string(), spec.dim.to_string()));
    }
    if space.metric != spec.metric {
        return Err(mismatch(
            "metric",
            format!("{:?}", space.metric),
            format!("{:?}", spec.metric),
        ));
    }
    if space.kind != spec.kind {
        return Err(mismatch(
            "vectors",
            space.kind.name().to_string(),
            spec.kind.name().to_string(),
        ));
    }
    Ok(())
}

fn resolved(space: &StoredSpace) -> ResolvedSpace {
    ResolvedSpace {
        number: space.number,
        name: space.name.clone(),
        dim: space.dim as usize,
        metric: space.metric,
        kind: space.kind,
        index: space.index,
        train: (space.kind == SpaceKind::Item2vec)
            .then(|| space.train.as_ref().and_then(StoredTrain::item2vec).unwrap_or_default()),
        dnn: (space.kind == SpaceKind::YoutubeDnn)
            .then(|| space.train.as_ref().and_then(StoredTrain::dnn).unwrap_or_default()),
    }
}
