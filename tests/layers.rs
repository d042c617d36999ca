//! The crate's modules import only downward (ARCHITECTURE.md, "Layers"):
//! every `crate::` and `super::` path in a module's code (tests aside) must
//! point at a module of a lower layer, or inside the module's own layer
//! without a cycle. Read from the sources, so a new upward import or cycle
//! fails here before it settles in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules by layer, lowest first. A module may import modules of
/// its own or lower layers; within one top-level module, files must not
/// import each other in a cycle.
const LAYERS: &[&[&str]] = &[
    &["error", "faults"],
    &["event", "codec", "stamp", "fsutil", "idmap", "metric", "durability"],
    &["kernels", "validate"],
    &["wal", "index", "train"],
    &["segment", "options", "runs"],
    &["meta"],
    &["version"],
    &["query"],
    &["store"],
    &["crate", "fuzz"],
];

/// The rooms of `store` by layer, lowest first (ARCHITECTURE.md, "Rooms
/// of the store"): a room's modules may import rooms of their own or a
/// lower layer. Every room may name the facade and the open store's state
/// (`store` itself, `state`, `space`, and the facade's files), which
/// assemble the rooms' parts and are above them all.
const ROOMS: &[&[&str]] = &[
    &["behaviour", "trending"],
    &["write", "segments"],
    &["training"],
    &["open", "maintenance", "interop"],
];

/// The room of a module under `store`, if it is in one (None for the
/// facade and the state, and for modules outside `store`).
fn room_of(module: &str) -> Option<usize> {
    let mut parts = module.split("::");
    if parts.next() != Some("store") {
        return None;
    }
    let room = parts.next()?;
    ROOMS.iter().position(|layer| layer.contains(&room))
}

/// Imports between rooms of `store` that point up a layer.
fn upward_room_imports(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in graph {
        let Some(from_layer) = room_of(from) else { continue };
        for to in tos {
            if room_of(to).is_some_and(|to_layer| to_layer > from_layer) {
                out.push(format!("{from} -> {to}"));
            }
        }
    }
    out
}

fn layer_of(top: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or_else(|| panic!("module `{top}` is in no layer: add it to LAYERS and ARCHITECTURE.md"))
}

/// Module path (`store::seal`, `crate` for lib.rs) -> its source, tests cut.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let name = if parts.is_empty() {
                "crate".to_string()
            } else {
                parts.join("::")
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(name, code);
        }
    }
    out
}

/// The longest prefix of `path` that names a module.
fn resolve(modules: &BTreeMap<String, String>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

fn ident_run(s: &str) -> Vec<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].split("::").filter(|p| !p.is_empty()).collect()
}

/// The modules that module `name` (source `code`) imports.
fn imports(modules: &BTreeMap<String, String>, name: &str, code: &str) -> BTreeSet<String> {
    let parent: Vec<&str> = if name == "crate" {
        Vec::new()
    } else {
        let mut p: Vec<&str> = name.split("::").collect();
        p.pop();
        p
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let path = ident_run(&code[i + "crate::".len()..]);
        if let Some(m) = resolve(modules, &path) {
            out.insert(m);
        }
    }
    for (i, _) in code.match_indices("super::") {
        let rest = &code[i + "super::".len()..];
        let names: Vec<Vec<&str>> = if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            group.split(',').map(|g| ident_run(g.trim())).collect()
        } else {
            vec![ident_run(rest)]
        };
        for path in names {
            let full: Vec<&str> = parent.iter().copied().chain(path.iter().copied()).collect();
            match resolve(modules, &full) {
                Some(m) if m.len() > parent.join("::").len() => {
                    out.insert(m);
                }
                // A name the parent module defines (its facade type).
                _ if !parent.is_empty() => {
                    out.insert(parent.join("::"));
                }
                _ => {}
            }
        }
    }
    out.remove(name);
    out
}

#[test]
fn modules_import_only_downward_and_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, code)| (name.clone(), imports(&modules, name, code)))
        .collect();
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();

    let mut upward = Vec::new();
    for (from, tos) in &graph {
        for to in tos {
            if layer_of(&top(to)) > layer_of(&top(from)) {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports pointing up a layer: {upward:#?}");
    let upward_rooms = upward_room_imports(&graph);
    assert!(
        upward_rooms.is_empty(),
        "imports pointing up a layer of the store's rooms: {upward_rooms:#?}"
    );
    // Every directory under store/ is a room in the table (or the facade's).
    for name in graph.keys() {
        let parts: Vec<&str> = name.split("::").collect();
        if parts.len() >= 3 && parts[0] == "store" {
            assert!(
                room_of(name).is_some(),
                "store::{} is a room missing from ROOMS (and ARCHITECTURE.md)",
                parts[1]
            );
        }
    }

    // Cycles: a submodule naming its parent's facade (`super::Store`) is the
    // one allowed way up, so edges into an ancestor are left out.
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

/// The tools binary's rooms by layer, lowest first (ARCHITECTURE.md, the
/// Map): the readers and the printers, then the store commands, then
/// evaluation, benchmarks and the crash drivers, which use the commands'
/// helpers. `main` dispatches to all of them.
const TOOL_ROOMS: &[&[&str]] = &[&["input", "output"], &["commands"], &["eval", "bench", "crash"]];

#[test]
fn the_tools_rooms_import_downward_and_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/src");
    let mut modules = modules(&src);
    // The binary's root is main.rs.
    if let Some(main) = modules.remove("main") {
        modules.insert("crate".to_string(), main);
    }
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, code)| (name.clone(), imports(&modules, name, code)))
        .collect();
    // The graph is the binary's: its rooms' modules and their imports.
    assert!(graph.len() > 30, "{:?}", graph.keys());
    assert!(
        graph["bench::train"].contains("eval::dnn"),
        "{:?}",
        graph["bench::train"]
    );
    let layer = |m: &str| {
        let room = m.split("::").next().unwrap_or(m);
        TOOL_ROOMS.iter().position(|l| l.contains(&room))
    };
    let mut upward = Vec::new();
    for (from, tos) in &graph {
        if from == "crate" {
            continue;
        }
        let from_layer = layer(from).unwrap_or_else(|| panic!("tools module `{from}` is in no room of TOOL_ROOMS"));
        for to in tos.iter().filter(|to| to.as_str() != "crate") {
            if layer(to).is_some_and(|l| l > from_layer) {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(upward.is_empty(), "tools imports pointing up a room: {upward:#?}");
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "tools import cycles: {cycles:#?}");
}

/// Import cycles in `graph`, leaving out edges into an ancestor (a module
/// naming its parent's own items: a room's modules its `mod.rs`).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let edges = |m: &str| -> Vec<String> {
        graph[m]
            .iter()
            .filter(|to| !m.starts_with(&format!("{to}::")) && to.as_str() != "crate" && graph.contains_key(*to))
            .cloned()
            .collect()
    };
    let mut state: BTreeMap<String, u8> = BTreeMap::new();
    let mut found = Vec::new();
    fn visit(
        m: &str,
        edges: &dyn Fn(&str) -> Vec<String>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        found: &mut Vec<String>,
    ) {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for next in edges(m) {
            match state.get(&next) {
                Some(1) => {
                    let start = stack.iter().position(|s| *s == next).unwrap_or(0);
                    found.push(format!("{} -> {next}", stack[start..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(&next, edges, state, stack, found),
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
    }
    for m in graph.keys() {
        if !state.contains_key(m) {
            visit(m, &edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[test]
fn the_checker_sees_an_upward_import_and_a_cycle() {
    let mut modules = BTreeMap::new();
    modules.insert("wal".to_string(), "use crate::store::Store;".to_string());
    modules.insert("store".to_string(), String::new());
    modules.insert("store::a".to_string(), "use super::b::X;".to_string());
    modules.insert("store::b".to_string(), "use super::{a, Shared};".to_string());
    assert!(imports(&modules, "wal", &modules["wal"]).contains("store"));
    let a = imports(&modules, "store::a", &modules["store::a"]);
    let b = imports(&modules, "store::b", &modules["store::b"]);
    assert!(a.contains("store::b"), "{a:?}");
    assert!(b.contains("store::a") && b.contains("store"), "{b:?}");

    // A table room importing the training room is upward; the other way
    // round, and naming the facade's `Store`, are not.
    modules.insert("store::behaviour".to_string(), String::new());
    modules.insert("store::training".to_string(), String::new());
    modules.insert(
        "store::behaviour::x".to_string(),
        "use crate::store::training::Trainer; use crate::store::Store;".to_string(),
    );
    modules.insert(
        "store::training::y".to_string(),
        "use crate::store::behaviour::Behaviour;".to_string(),
    );
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, code)| (name.clone(), imports(&modules, name, code)))
        .collect();
    assert_eq!(upward_room_imports(&graph), ["store::behaviour::x -> store::training"]);
}
