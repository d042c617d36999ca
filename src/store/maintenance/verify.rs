//! `Store::verify`: every checksum and cross-reference, reported rather
//! than acted on.
//!
//! Checked: each manifest segment's body checksum and row count; each
//! segment's index file (both checksums, and that it was built for this
//! segment), if there is one; the growing-segment snapshot; the trainer
//! state (both checksums, and that it names the generation the manifest
//! does); that no file in the segment directory is left over; that each
//! segment's id order is its id column's, and (host-fed spaces) that no
//! item is live in two segments; that every dead-row record names a
//! segment of the manifest; and every frame of every log file.

use std::collections::HashSet;

use crate::error::Result;
use crate::index::file as index_file;
use crate::meta::records::SpaceManifest;
use crate::options::SpaceKind;
use crate::segment::sealed::{self, SealedSegment};
use crate::store::space::SpaceState;
use crate::store::Store;
use crate::train::dnn::state::DnnState;
use crate::train::state::{self, TrainerState};

/// What [`Store::verify_with`] checks: by default, the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    space: Option<String>,
}

impl VerifyOptions {
    /// Check the whole store.
    pub fn new() -> Self {
        VerifyOptions::default()
    }

    /// Check the files of the space `name` only (its segments, indexes,
    /// growing snapshot, trainer state) and its segments' id orders; the
    /// log, the runs, the metadata's other records and leftover files are
    /// store-wide, checked by a whole-store verify.
    pub fn space(mut self, name: &str) -> Self {
        self.space = Some(name.to_string());
        self
    }

    /// The one space checked, if one is named.
    pub fn only_space(&self) -> Option<&str> {
        self.space.as_deref()
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Files whose checksums were checked.
    pub files_checked: usize,
    /// Records checked: id-order entries (against the segments' ids) and
    /// the entries of every run (events, features, attributes).
    pub entries_checked: usize,
    /// Every problem, one line each (empty: healthy): something that
    /// loses or changes data.
    pub problems: Vec<String>,
    /// What is not a problem but worth knowing, one line each: leftovers
    /// of an interrupted operation that the next writable open removes,
    /// a torn log tail it cuts.
    pub notes: Vec<String>,
}

impl Store {
    /// Checks every checksum and cross-reference of the store (see the
    /// module documentation). Reads every byte of every file; queries and
    /// writes carry on meanwhile (the checks run on the version current
    /// when it starts, under no lock).
    ///
    /// ```
    /// use emberdb::{Durability, Event, Options, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(2).durability(Durability::None))?;
    /// store.upsert(1, &[1.0, 0.0])?;
    /// store.append_event(Event::new(7, 1, 1_700_000_000_000))?;
    /// store.flush()?;
    /// let report = store.verify()?;
    /// assert!(report.problems.is_empty(), "{:?}", report.problems);
    /// assert!(report.files_checked > 0);
    /// # Ok(()) }
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(&VerifyOptions::new())
    }

    /// [`Store::verify`] of what `options` name: the whole store, or one
    /// space's files.
    pub fn verify_with(&self, options: &VerifyOptions) -> Result<VerifyReport> {
        match &options.space {
            Some(name) => self.verify_one_space(name),
            None => self.verify_store(),
        }
    }

    fn verify_store(&self) -> Result<VerifyReport> {
        let shared = &self.shared;
        // No merge removes a run while it is checked; the list and the
        // version are taken together.
        let _no_merge = shared.behaviour.merging.write();
        let (manifest, runs, behaviour) = {
            let w = self.write.lock();
            (
                w.core.manifest.clone(),
                w.core.runs.clone(),
                shared.behaviour.load_full(),
            )
        };
        let mut report = VerifyReport::default();
        let mut named = HashSet::new();
        for space in &shared.spaces {
            let files = &manifest.spaces[space.slot()];
            self.verify_space_files(space, files, &mut named, &mut report);
            check_orders(space, &space.catalog.version.load_full(), &mut report);
        }
        let dir = &shared.segments_dir;
        for entry in std::fs::read_dir(dir).map_err(|source| crate::Error::Io {
            path: dir.clone(),
            source,
        })? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if named.contains(&name) {
                continue;
            }
            let ours = sealed::parse_name(&name)
                .or_else(|| index_file::parse_name(&name))
                .or_else(|| state::parse_name(&name))
                .is_some()
                || name.ends_with(crate::fsutil::TMP_SUFFIX);
            report.notes.push(if ours {
                format!(
                    "{}: left by an interrupted operation (the next writable open removes it)",
                    entry.path().display()
                )
            } else {
                format!("{}: not a file of the store's (left alone)", entry.path().display())
            });
        }
        check_recovery_copy(&shared.path, &manifest, &mut report);
        // (The segment directory's leftovers were listed just above.)
        for left in self.recovery.leftover_files.iter().filter(|p| !p.starts_with(dir)) {
            report.notes.push(format!(
                "{}: a log file a crashed rotation left empty (the next writable open removes it)",
                left.display()
            ));
        }
        for id in shared.blocked.ids() {
            for space in &shared.spaces {
                if crate::store::write::delete::is_live(space, id)? {
                    report.problems.push(format!(
                        "item {id} was deleted from the store, but {} serves it",
                        space.describe()
                    ));
                }
            }
        }
        for stray in shared.meta.strays()? {
            report.notes.push(format!(
                "{}: a metadata database that meta/CURRENT does not name (an interrupted rebuild's, which the \
                 next writable open removes, or not the store's: it is left alone)",
                stray.display()
            ));
        }
        let segments: HashSet<u64> = manifest
            .spaces
            .iter()
            .flat_map(|s| s.segments.iter().map(|e| e.id))
            .collect();
        for at in shared.meta.dead_rows()? {
            if !segments.contains(&at.segment) {
                report.problems.push(format!(
                    "{}: a dead-row record for segment {}, which the manifest does not name",
                    shared.path.join("meta").display(),
                    at.segment
                ));
            }
        }
        // The runs holding histories, features and attributes, read whole.
        let runs = shared.behaviour.check(&behaviour, &runs);
        report.files_checked += runs.files;
        report.entries_checked += runs.entries;
        report.problems.extend(runs.problems);
        report.notes.extend(runs.notes);
        self.check_wal(&mut report)?;
        Ok(report)
    }

    /// The files of one space: segments, their indexes, the growing
    /// snapshot and the trainer state; their names go into `named`.
    fn verify_space_files(
        &self,
        space: &SpaceState,
        files: &SpaceManifest,
        named: &mut HashSet<String>,
        report: &mut VerifyReport,
    ) {
        let dir = &self.shared.segments_dir;
        let version = space.catalog.version.load_full();
        for entry in &files.segments {
            let path = dir.join(sealed::file_name(entry.id));
            named.insert(sealed::file_name(entry.id));
            report.files_checked += 1;
            match version.segment(entry.id) {
                Some(segment) => {
                    if let Err(e) = segment.verified() {
                        report.problems.push(e.to_string());
                    }
                }
                None => report.problems.push(format!(
                    "{}: in the manifest of {} but not open",
                    path.display(),
                    space.describe()
                )),
            }
            let index_path = dir.join(index_file::file_name(entry.id));
            named.insert(index_file::file_name(entry.id));
            if index_path.exists() {
                report.files_checked += 1;
                if let Err(e) = index_file::map(&index_path) {
                    report.problems.push(e.to_string());
                }
            }
        }
        if let Some(g) = &files.growing {
            let name = sealed::snapshot_file_name(g.id);
            report.files_checked += 1;
            let path = dir.join(&name);
            named.insert(name);
            if let Err(e) =
                SealedSegment::open(&path, g.id, space.dim).and_then(|s| s.verified().and_then(|()| s.order_checksum()))
            {
                report.problems.push(e.to_string());
            }
        }
        if let Some(t) = &files.trainer {
            let name = state::file_name(t.file_id);
            report.files_checked += 1;
            let path = dir.join(&name);
            named.insert(name);
            let generation = match space.kind {
                SpaceKind::YoutubeDnn => DnnState::read(&path, space.model_dim).map(|s| s.generation),
                _ => TrainerState::read(&path, space.model_dim).map(|s| s.generation),
            };
            match generation {
                Ok(g) if g != t.generation => report.problems.push(format!(
                    "{}: generation {g}, the manifest says {}",
                    path.display(),
                    t.generation
                )),
                Ok(_) => {}
                Err(e) => report.problems.push(e.to_string()),
            }
        }
    }

    /// Checks the files of the space `name` (segments, indexes, growing
    /// snapshot, trainer state) and its segments' id orders:
    /// [`Store::verify`] restricted to one space (the log, the metadata's
    /// other records and leftover files are store-wide, checked there).
    #[deprecated(note = "use Store::verify_with(&VerifyOptions::new().space(name))")]
    pub fn verify_space(&self, name: &str) -> Result<VerifyReport> {
        self.verify_with(&VerifyOptions::new().space(name))
    }

    fn verify_one_space(&self, name: &str) -> Result<VerifyReport> {
        let space = self.shared.space(name)?;
        let manifest = self.write.lock().core.manifest.clone();
        let files = &manifest.spaces[space.slot()];
        let mut report = VerifyReport::default();
        self.verify_space_files(space, files, &mut HashSet::new(), &mut report);
        check_orders(space, &space.catalog.version.load_full(), &mut report);
        Ok(report)
    }

    /// Every frame of every log file, the obsolete part before the
    /// checkpoint too. Writers wait meanwhile, so no frame is half-written.
    /// A torn tail of the last file, the zeros recovery padded a file with
    /// up to its checkpoint, and a file a crashed rotation left with no
    /// complete header are notes: recovery cuts, skips or removes them,
    /// and nothing acknowledged is in them.
    fn check_wal(&self, report: &mut VerifyReport) -> Result<()> {
        let mut w = self.write.lock();
        w.wal.write_pending()?;
        let checkpoint = w.core.manifest.checkpoint;
        let tracked = self.shared.meta.load_wal_files()?;
        if let Some(tracked) = &tracked {
            let problems = tracked.problems(&self.shared.wal_dir, checkpoint);
            report.problems.extend(problems.iter().map(|e| e.to_string()));
        }
        let live = tracked
            .as_ref()
            .and_then(|t| t.live())
            .map(|l| l.max(checkpoint.file_no));
        let files = crate::wal::file::list(&self.shared.wal_dir)?;
        let last = files.last().map(|(no, _)| *no);
        for (no, path) in files {
            report.files_checked += 1;
            let bytes = std::fs::read(&path).map_err(|source| crate::Error::Io {
                path: path.clone(),
                source,
            })?;
            if let Err(e) = crate::wal::file::check_header(&bytes, no, &path) {
                let after_live = live.is_some_and(|l| no > l) || (live.is_none() && Some(no) == last);
                if bytes.len() <= crate::wal::file::HEADER_LEN && after_live {
                    report.notes.push(format!(
                        "{}: a log file whose creation was interrupted (no complete header; the next writable \
                         open removes or restarts it)",
                        path.display()
                    ));
                } else {
                    report.problems.push(e.to_string());
                }
                continue;
            }
            let mut offset = crate::wal::file::HEADER_LEN;
            loop {
                match crate::wal::frame::parse_at(&bytes, offset) {
                    crate::wal::frame::Parsed::Frame { next, .. } => offset = next,
                    crate::wal::frame::Parsed::End => break,
                    crate::wal::frame::Parsed::Bad { reason } => {
                        let padded_to = checkpoint.offset as usize;
                        if no == checkpoint.file_no
                            && offset < padded_to
                            && padded_to <= bytes.len()
                            && bytes[offset..padded_to].iter().all(|b| *b == 0)
                        {
                            report.notes.push(format!(
                                "{}: bytes {offset}..{padded_to} are zeros that recovery wrote up to the \
                                 checkpoint (the log bytes before it were lost with power, after the \
                                 checkpoint that covers them)",
                                path.display()
                            ));
                            offset = padded_to;
                            continue;
                        }
                        if Some(no) == last && crate::wal::frame::next_valid_after(&bytes, offset).is_none() {
                            report.notes.push(format!(
                                "{}: a torn write at byte {offset} ({reason}), never acknowledged (the next \
                                 writable open cuts it)",
                                path.display()
                            ));
                        } else {
                            report
                                .problems
                                .push(format!("{}: bad frame at byte {offset}: {reason}", path.display()));
                        }
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The `RECOVERY` copy that `Store::repair` works from: it must decode,
/// describe the same spaces as the metadata, and name only files that
/// exist. One that lags the metadata by a checkpoint (a crash between the
/// checkpoint's flush and the copy) is a note: the next writable open
/// rewrites it.
fn check_recovery_copy(store: &std::path::Path, manifest: &crate::meta::records::Manifest, report: &mut VerifyReport) {
    let path = crate::meta::recovery_file::path(store);
    report.files_checked += 1;
    match crate::meta::recovery_file::read(store) {
        Ok(None) => report.notes.push(format!(
            "{}: missing (the next writable open writes it; until then `repair` cannot run)",
            path.display()
        )),
        Err(e) => report.problems.push(format!(
            "{e} (the copy `repair` needs; the next writable open rewrites it)"
        )),
        Ok(Some(copy)) => {
            let dir = store.join("segments");
            for id in copy.manifest.file_ids() {
                let names = [
                    sealed::file_name(id),
                    sealed::snapshot_file_name(id),
                    state::file_name(id),
                ];
                if !names.iter().any(|n| dir.join(n).exists()) {
                    report.problems.push(format!(
                        "{}: names file {id}, which is not in {}",
                        path.display(),
                        dir.display()
                    ));
                }
            }
            if copy.manifest.checkpoint > manifest.checkpoint {
                report.problems.push(format!(
                    "{}: newer than the metadata (checkpoint at log file {} byte {}, the metadata's at file {} byte \
                     {}): the metadata lost its latest commits; `ember repair` rebuilds it from this copy",
                    path.display(),
                    copy.manifest.checkpoint.file_no,
                    copy.manifest.checkpoint.offset,
                    manifest.checkpoint.file_no,
                    manifest.checkpoint.offset
                ));
            } else if copy.manifest != *manifest {
                report.notes.push(format!(
                    "{}: older than the metadata (the next writable open rewrites it)",
                    path.display()
                ));
            }
        }
    }
}

/// Every sealed segment's id order is its id column's (see
/// `segment::id_order`), and, in a host-fed space, no item is live in two
/// segments (a lookup would find either).
fn check_orders(space: &SpaceState, version: &crate::version::Version, report: &mut VerifyReport) {
    let mut live = Vec::new();
    for segment in &version.sealed {
        if segment.verified().is_err() {
            // Reported with the segment's files.
            continue;
        }
        match segment.check_order() {
            Ok(()) => report.entries_checked += segment.count(),
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        }
        if space.trainer.is_none() {
            if let Ok((ids, _)) = segment.data() {
                live.extend(
                    ids.iter()
                        .enumerate()
                        .filter(|(row, _)| !segment.dead().is_dead(*row))
                        .map(|(row, id)| (*id, segment.id(), row)),
                );
            }
        }
    }
    live.sort_unstable();
    for pair in live.windows(2) {
        if pair[0].0 == pair[1].0 {
            report.problems.push(format!(
                "item {} of {} is live in two segments: row {} of segment {} and row {} of segment {}",
                pair[0].0,
                space.describe(),
                pair[0].2,
                pair[0].1,
                pair[1].2,
                pair[1].1
            ));
        }
    }
}
