//! `verify`'s part for the runs: every named run read whole (block crcs,
//! order across blocks, the sparse index, the entries' fields), the runs
//! open against the manifest's list, and files in `runs/` that it does
//! not name (leftovers that the next writable open removes: notes).

use std::collections::HashSet;

use crate::meta::records::RunManifest;
use crate::runs::{self, RunKind};
use crate::store::behaviour::{Behaviour, BehaviourVersion};

/// What checking the runs found.
#[derive(Default)]
pub(crate) struct RunCheck {
    pub files: usize,
    pub entries: usize,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Behaviour {
    /// Checks every run the version holds against `listed` (the committed
    /// list) and reads each whole.
    pub fn check(&self, v: &BehaviourVersion, listed: &RunManifest) -> RunCheck {
        let mut out = RunCheck::default();
        let mut named = HashSet::new();
        let mut check = |kind: RunKind, ids: Vec<u64>, verify: &mut dyn FnMut(usize) -> crate::Result<u64>| {
            let want: Vec<u64> = listed.of(kind).iter().map(|r| r.id).collect();
            if ids != want {
                out.problems.push(format!(
                    "{}: the open {kind:?} runs {ids:?} are not the ones the metadata lists ({want:?})",
                    self.dir.display()
                ));
            }
            for (i, id) in ids.iter().enumerate() {
                named.insert(runs::file_name(kind, *id));
                out.files += 1;
                match verify(i) {
                    Ok(n) => out.entries += n as usize,
                    Err(e) => out.problems.push(e.to_string()),
                }
            }
        };
        check(RunKind::Events, v.events.iter().map(|r| r.id()).collect(), &mut |i| {
            v.events[i].verify()
        });
        check(
            RunKind::Features,
            v.features.iter().map(|r| r.id()).collect(),
            &mut |i| v.features[i].verify(),
        );
        check(
            RunKind::Attributes,
            v.attributes.iter().map(|r| r.id()).collect(),
            &mut |i| v.attributes[i].verify(),
        );
        for (kind, list) in [
            (RunKind::Events, &listed.events),
            (RunKind::Features, &listed.features),
            (RunKind::Attributes, &listed.attributes),
        ] {
            for record in list {
                let path = self.dir.join(runs::file_name(kind, record.id));
                if !path.is_file() {
                    out.problems
                        .push(format!("{}: a run the metadata lists is missing", path.display()));
                }
            }
        }
        if let Some(id) = listed.trending {
            named.insert(crate::store::trending::file::file_name(id));
            out.files += 1;
            if let Err(e) = crate::store::trending::file::read(&self.dir, id) {
                out.problems.push(e.to_string());
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !named.contains(&name) {
                    out.notes.push(format!(
                        "{}: a file no run list names (left by an interrupted checkpoint or merge; the next \
                         writable open removes it)",
                        entry.path().display()
                    ));
                }
            }
        }
        out
    }
}
