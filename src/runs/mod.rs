//! Runs: immutable, memory-mapped files of behaviour (issue 27): user
//! events (`ev-`), user features (`ft-`) and item attributes (`at-`), each
//! written once under a temporary name, renamed into `<store>/runs/`, and
//! merged by a size-tiered policy. This layer is pure storage: it knows
//! nothing of the store's manifest, log or versions.
//!
//! | file | content | layout |
//! |---|---|---|
//! | `ev-<id:020>.run` | events, sorted by (user, seq) | [`event_run`] |
//! | `ft-<id:020>.run` | user features, one entry per user | [`keyed_run`] |
//! | `at-<id:020>.run` | item attributes, one entry per item | [`keyed_run`] |
//!
//! A run stands for every operation of its kind with a sequence number in
//! `[from_seq, to_seq)`; the runs of one kind cover disjoint, adjacent
//! ranges, so "newest" is just "later in seq order". Ids come from the
//! store's segment id counter, so a run id is unique across the store.
//!
//! Files: [`blocks`] (the per-block crc table, lazy block checks, the
//! fence for lookups, the shared header and footer), [`frame`] (an open,
//! mapped run), [`directory`] (event runs' hash directory), [`event_run`],
//! [`keyed_run`], [`merge`] (k-way merges), [`policy`] (which runs to
//! merge).

pub(crate) mod blocks;
pub(crate) mod directory;
pub(crate) mod event_run;
pub(crate) mod frame;
pub(crate) mod keyed_run;
pub(crate) mod merge;
pub(crate) mod policy;

/// The directory of run files inside a store.
pub(crate) const RUNS_DIR: &str = "runs";

/// What a run file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) enum RunKind {
    /// User events ([`event_run`]).
    Events,
    /// User features ([`keyed_run`], keyed by user).
    Features,
    /// Item attributes ([`keyed_run`], keyed by item).
    Attributes,
}

impl RunKind {
    pub const ALL: [RunKind; 3] = [RunKind::Events, RunKind::Features, RunKind::Attributes];

    /// The file-name prefix of runs of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            RunKind::Events => "ev",
            RunKind::Features => "ft",
            RunKind::Attributes => "at",
        }
    }
}

/// What the caller knows of a run before writing it (the run's header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunHeader {
    /// The run id, also in the file name.
    pub id: u64,
    /// Every entry's seq is >= `from_seq`.
    pub from_seq: u64,
    /// Every entry's seq is < `to_seq`: the run stands for all operations of
    /// its kind in `[from_seq, to_seq)`.
    pub to_seq: u64,
    /// Event runs: the history length the merge that wrote the run kept
    /// per user; 0 = a flush (nothing truncated). Keyed runs: always 0 (the
    /// header's field holds the kind instead).
    pub history_len: u32,
    /// The merge included the oldest run of its kind. A bottom keyed run
    /// holds no deletion entries.
    pub bottom: bool,
}

/// The file name of run `id` of `kind`: `ev-<id:020>.run`.
pub(crate) fn file_name(kind: RunKind, id: u64) -> String {
    format!("{}-{id:020}.run", kind.prefix())
}

/// The kind and id named by a run file name, if `name` is exactly one
/// [`file_name`] writes (20 digits, so a name maps to one id and back).
pub(crate) fn parse_name(name: &str) -> Option<(RunKind, u64)> {
    let (prefix, rest) = name.split_once('-')?;
    let kind = RunKind::ALL.into_iter().find(|k| k.prefix() == prefix)?;
    let digits = rest.strip_suffix(".run")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((kind, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        for kind in RunKind::ALL {
            for id in [0, 7, u64::MAX] {
                let name = file_name(kind, id);
                assert_eq!(parse_name(&name), Some((kind, id)), "{name}");
            }
        }
        assert_eq!(file_name(RunKind::Events, 5), "ev-00000000000000000005.run");
        for bad in [
            "ev-5.run",
            "ev-00000000000000000005.run.tmp",
            "xx-00000000000000000005.run",
            "ev-+0000000000000000005.run",
            "ev-99999999999999999999.run",
            "ft-00000000000000000005.emb",
            "seg-00000000000000000005.emb",
            "",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
