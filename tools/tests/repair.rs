//! `ember repair`: a store whose metadata database was deleted is refused
//! with a hint that names `ember repair`; the repair brings every vector
//! back, and histories from the runs, and says that nothing was lost.

mod common;

use common::{ember, failed, ok, path};

#[test]
fn a_store_without_its_metadata_database_is_repaired_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let csv = dir.path().join("v.csv");
    let rows: String = (0..50).map(|i| format!("{i},{}.0,1.0,{}.5\n", i + 1, i % 7)).collect();
    std::fs::write(&csv, rows).unwrap();
    ok(&ember(&["ingest", path(&store), path(&csv), "--vectors", "--dim", "3"]));
    let before = ok(&ember(&["get", path(&store), "17"]));
    // Already healthy: nothing to do.
    let err = failed(&ember(&["repair", path(&store)]));
    assert!(err.contains("nothing to repair"), "{err}");

    for entry in std::fs::read_dir(store.join("meta")).unwrap() {
        let entry = entry.unwrap().path();
        if entry.is_dir() {
            std::fs::remove_dir_all(entry).unwrap();
        }
    }
    let err = failed(&ember(&["get", path(&store), "17"]));
    assert!(err.contains("ember repair"), "{err}");
    let said = ok(&ember(&["repair", path(&store)]));
    assert!(said.contains("repaired: 1 space"), "{said}");
    assert!(said.contains("nothing acknowledged was lost"), "{said}");
    assert_eq!(ok(&ember(&["get", path(&store), "17"])), before);
    assert!(ok(&ember(&["verify", path(&store)])).starts_with("healthy"));
}
