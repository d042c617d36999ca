//! ARCHITECTURE.md's Map cannot drift: every source file of the library
//! and of the `ember` tools is in it, and everything it names exists.
//!
//! The Map is a tree in a code block: an entry is a line indented by two
//! spaces a level (at most four levels) whose first word is a file
//! (`.rs`, `.c`) or a directory (ending in `/`); deeper-indented lines
//! continue the entry above. `tests.rs` files (a module's unit tests) are
//! not required.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The paths the Map lists, relative to the repository root.
fn listed(architecture: &str) -> BTreeSet<String> {
    let after = architecture
        .split_once("## Map")
        .expect("ARCHITECTURE.md has a Map section")
        .1;
    let block = after
        .split_once("```")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the Map is a code block")
        .0;
    let mut out = BTreeSet::new();
    let mut dirs: Vec<String> = Vec::new();
    for line in block.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        let is_entry = word.ends_with('/') || word.ends_with(".rs") || word.ends_with(".c");
        if !is_entry || indent % 2 != 0 || indent > 8 {
            continue;
        }
        dirs.truncate(indent / 2);
        let path = format!("{}{word}", dirs.concat());
        if word.ends_with('/') {
            dirs.push(word.to_string());
        }
        out.insert(path);
    }
    out
}

/// Every file under `dir` with one of `extensions`, relative to `root`.
fn files(root: &Path, dir: &Path, extensions: &[&str], out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(root, &path, extensions, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
        {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            out.push(relative);
        }
    }
}

#[test]
fn every_source_file_is_in_the_map_and_the_map_names_only_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let listed = listed(&architecture);
    let mut sources = Vec::new();
    for dir in ["src", "tools/src"] {
        files(root, &root.join(dir), &["rs", "c"], &mut sources);
    }
    let missing: Vec<&String> = sources
        .iter()
        .filter(|f| !f.ends_with("/tests.rs") && !listed.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "source files missing from ARCHITECTURE.md's Map: {missing:?}"
    );
    let stale: Vec<&String> = listed
        .iter()
        .filter(|p| (p.starts_with("src/") || p.starts_with("tools/src/")) && !root.join(p).exists())
        .collect();
    assert!(stale.is_empty(), "the Map names what does not exist: {stale:?}");
    // The parser itself: it must have found the tree, not an empty block.
    assert!(listed.contains("src/store/behaviour/merger.rs"), "{listed:?}");
    assert!(listed.contains("tools/src/crash/scenario.rs"), "{listed:?}");
}

#[test]
fn the_map_parser_follows_indentation_and_skips_continuations() {
    let text = "## Map\n\n```\nsrc/\n  a.rs        x\n              b.rs continues a\n  d/          y\n    e.rs        z\n    f/sub.rs    w\n  g.rs        v\n```\n";
    let got: Vec<String> = listed(text).into_iter().collect();
    assert_eq!(
        got,
        ["src/", "src/a.rs", "src/d/", "src/d/e.rs", "src/d/f/sub.rs", "src/g.rs"]
    );
}
