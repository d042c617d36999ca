//! `ember verify`, `compact` and `export` end to end through the real
//! binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use emberdb::{Durability, Event, IndexSpec, Options, Store, TrainOptions};

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn vector(id: u64) -> Vec<f32> {
    (0..8).map(|j| ((id * 31 + j * 7) % 17) as f32 - 8.0 + 0.5).collect()
}

/// A host-fed store with a sealed, HNSW-indexed segment, dead rows and a
/// growing snapshot; and a trained store (segments plus a trainer file).
fn build_stores(dir: &Path) -> (PathBuf, PathBuf) {
    let host = dir.join("host");
    {
        let store = Store::open(
            &host,
            Options::new(8)
                .durability(Durability::Buffered)
                .segment_rows(600)
                .flat_below(100)
                .index(IndexSpec::hnsw()),
        )
        .unwrap();
        for id in 0..1_300u64 {
            store.upsert(id, &vector(id)).unwrap();
        }
        for id in (0..600u64).filter(|id| id % 2 == 0) {
            store.delete(id).unwrap();
        }
        store.wait_for_indexes();
    }
    let trained = dir.join("trained");
    {
        let store = Store::open(
            &trained,
            Options::trained(8).train_options(TrainOptions::default().epochs(2).threads(1)),
        )
        .unwrap();
        let events: Vec<Event> = (0..400u64).map(|i| Event::new(i % 40, i % 50, i)).collect();
        store.append_events(&events).unwrap();
        store.train().unwrap();
    }
    (host, trained)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

fn file_starting(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}", dir.display()))
}

#[test]
fn verify_reports_a_flipped_byte_in_each_kind_of_file() {
    let dir = tempfile::tempdir().unwrap();
    let (host, trained) = build_stores(dir.path());
    for store in [&host, &trained] {
        let out = ember(&["verify", store.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("healthy"), "{}", text(&out));
    }
    let cases = [
        (&host, "segments", "seg-", ".emb"),
        (&host, "segments", "seg-", ".idx"),
        (&host, "segments", "grow-", ".emb"),
        (&host, "wal", "wal-", ".log"),
        (&trained, "segments", "trainer-", ".emb"),
        (&trained, "segments", "seg-", ".emb"),
        (&trained, "meta", "CURRENT", ""),
    ];
    for (i, (store, sub, prefix, suffix)) in cases.iter().enumerate() {
        let copy = dir.path().join(format!("case{i}"));
        copy_dir(store, &copy);
        let file = file_starting(&copy.join(sub), prefix, suffix);
        let mut bytes = std::fs::read(&file).unwrap();
        // A byte in the body (past the 64-byte header): only a checksum
        // over the contents can see it. (CURRENT is a header alone.)
        let at = if bytes.len() > 64 {
            (bytes.len() - 64) / 2 + 64
        } else {
            20
        };
        bytes[at] ^= 0x20;
        std::fs::write(&file, &bytes).unwrap();
        let out = ember(&["verify", copy.to_str().unwrap()]);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(text(&out).contains(&name), "the report names {name}: {}", text(&out));
    }
    // sled's own file: sled checks its pages when the store opens.
    let copy = dir.path().join("sled");
    copy_dir(&host, &copy);
    let db_dir = file_starting(&copy.join("meta"), "db-", "");
    let file = db_dir.join("db");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1_000] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    let out = ember(&["verify", copy.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    // Either sled refuses the page (named), or it recovers to an older
    // state, which the recovery copy (written after the last commit) is
    // newer than: both are reported, and nothing is removed (verify opens
    // read-only).
    assert!(
        text(&out).contains("meta/db-") || text(&out).contains("older than its recovery copy"),
        "{}",
        text(&out)
    );

    // A file nobody names is noted, not a problem: it loses nothing, and
    // the store leaves it alone.
    let copy = dir.path().join("orphan");
    copy_dir(&host, &copy);
    std::fs::write(copy.join("segments").join("notes.txt"), b"hello").unwrap();
    let out = ember(&["verify", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("note: ") && text(&out).contains("notes.txt: not a file of the store's"),
        "{}",
        text(&out)
    );
}

#[test]
fn compact_reclaims_segment_space_and_export_writes_vectors_and_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _) = build_stores(dir.path());
    let h = host.to_str().unwrap();
    let dry = text(&ember(&["compact", h, "--dry-run"]));
    assert!(dry.contains("would rewrite"), "{dry}");
    let out = ember(&["compact", h]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("rewrote"), "{}", text(&out));
    let again = text(&ember(&["compact", h]));
    assert!(again.contains("nothing to compact"), "{again}");
    assert!(ember(&["verify", h]).status.success());

    let fvecs = dir.path().join("items.fvecs");
    let similar = dir.path().join("similar.csv");
    let out = ember(&[
        "export",
        h,
        "--vectors",
        fvecs.to_str().unwrap(),
        "--similar",
        similar.to_str().unwrap(),
        "--top",
        "5",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let live = 1_300 - 300;
    let bytes = std::fs::read(&fvecs).unwrap();
    assert_eq!(bytes.len(), live * (4 + 8 * 4));
    assert_eq!(i32::from_le_bytes(bytes[0..4].try_into().unwrap()), 8);
    let ids = std::fs::read_to_string(format!("{}.ids", fvecs.display())).unwrap();
    assert_eq!(ids.lines().count(), live);
    assert!(ids.lines().all(|l| {
        let id: u64 = l.parse().unwrap();
        id >= 600 || id % 2 == 1
    }));
    let csv = std::fs::read_to_string(&similar).unwrap();
    assert_eq!(csv.lines().count(), 1 + live * 5);
    assert!(csv.starts_with("item_id,rank,similar_id,score\n"));
    let store = Store::open(&host, Options::existing()).unwrap();
    let first = csv.lines().nth(1).unwrap();
    let item: u64 = first.split(',').next().unwrap().parse().unwrap();
    let top = store.knn(&emberdb::Query::item(item).k(5)).unwrap();
    let second: u64 = first.split(',').nth(2).unwrap().parse().unwrap();
    assert_eq!(top[0].id, second);
    drop(store);

    // JSON lines: one object per item, its hits in the knn --json form.
    let jsonl = dir.path().join("similar.jsonl");
    let out = ember(&[
        "export",
        h,
        "--similar",
        jsonl.to_str().unwrap(),
        "--top",
        "3",
        "--jsonl",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(lines.lines().count(), live);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    let similar = first["similar"].as_array().unwrap();
    assert_eq!(similar.len(), 3);
    assert!(first["item_id"].is_u64() && similar[0]["id"].is_u64() && similar[0]["score"].is_f64());
}

#[test]
fn the_library_warnings_reach_stderr_unless_rust_log_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    {
        // A segment as large as the default `flat_below`, so that `ember`
        // (which opens with the defaults) loads its index. (IVF is quick to
        // build here; `ember` rebuilds the damaged file with its default.)
        let opts = Options::new(8)
            .durability(Durability::Buffered)
            .segment_rows(10_000)
            .index(IndexSpec::Ivf {
                nlist: Some(8),
                nprobe: 8,
            });
        let store = Store::open(&host, opts).unwrap();
        for id in 0..10_000u64 {
            store.upsert(id, &vector(id)).unwrap();
        }
        store.seal().unwrap();
        store.wait_for_indexes();
    }
    let idx = file_starting(&host.join("segments"), "seg-", ".idx");
    let bytes = std::fs::read(&idx).unwrap();
    let knn = |rust_log: Option<&str>| {
        let mut damaged = bytes.clone();
        let at = (bytes.len() - 64) / 2 + 64;
        damaged[at] ^= 0x20;
        std::fs::write(&idx, &damaged).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
        cmd.args(["knn", host.to_str().unwrap(), "--item", "17", "-k", "3"]);
        match rust_log {
            Some(level) => cmd.env("RUST_LOG", level),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // `knn` opens the store read-only: the damaged index is not rebuilt,
    // its segment is searched exactly, and the file stays as it is.
    let quiet = knn(Some("error"));
    assert!(quiet.is_empty(), "{quiet}");
    let warned = knn(None);
    assert!(
        warned.starts_with("ember: warning: ") && warned.contains("searching its segment exactly"),
        "{warned}"
    );
}
