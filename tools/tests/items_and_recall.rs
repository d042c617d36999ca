//! `ember ingest --items` (MovieLens's items.csv as it is), titles beside
//! ids in `ember knn`, attributes in `--json`, `--filter`, `--popular` and
//! `--recommend` (which need no training round).

mod common;

use common::{ember, failed, ok, path};

const ITEMS: &str = "item_id,title,year,genres\n\
1,Toy Story,1995,Animation|Children's|Comedy\n\
2,GoldenEye,1995,Action|Adventure|Thriller\n\
3,Four Rooms,1995,Thriller\n\
4,Get Shorty,1995,Action|Comedy|Drama\n\
5,Copycat,1996,Crime|Drama|Thriller\n";

/// User u rated items 1..=u (so item 1 is the most popular), MovieLens
/// columns.
fn ratings() -> String {
    let mut s = String::from("user_id,item_id,rating,timestamp\n");
    for user in 1..=5u64 {
        for item in 1..=user {
            s.push_str(&format!("{user},{item},{},{}\n", 1 + item % 5, 1000 + user * 10 + item));
        }
    }
    s
}

#[test]
fn items_titles_filters_and_trending_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (items, events) = (dir.path().join("items.csv"), dir.path().join("ratings.csv"));
    std::fs::write(&items, ITEMS).unwrap();
    std::fs::write(&events, ratings()).unwrap();
    ok(&ember(&["ingest", path(&store), path(&events), "--dim", "8"]));
    let said = ok(&ember(&["ingest", path(&store), path(&items), "--items"]));
    assert!(said.contains("ingested the attributes of 5 items"), "{said}");

    // Trending works before any round, with titles beside the ids.
    let table = ok(&ember(&["knn", path(&store), "--popular", "-k", "2"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].ends_with("title"), "{table}");
    assert!(lines[1].contains(" 1 ") && lines[1].ends_with("Toy Story"), "{table}");
    assert!(lines[2].contains(" 2 ") && lines[2].ends_with("GoldenEye"), "{table}");
    // User 2 saw items 1 and 2.
    let table = ok(&ember(&[
        "knn",
        path(&store),
        "--popular",
        "--for-user",
        "2",
        "-k",
        "1",
    ]));
    assert!(table.lines().nth(1).unwrap().ends_with("Four Rooms"), "{table}");
    // Filters, by value and by range; JSON carries the attributes.
    let json = ok(&ember(&[
        "knn",
        path(&store),
        "--popular",
        "--filter",
        "genre=Comedy",
        "--json",
    ]));
    let hits: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: Vec<u64> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 4]);
    assert_eq!(hits[0]["attributes"]["genre"][2], "Comedy");
    assert_eq!(hits[0]["attributes"]["title"][0], "Toy Story");
    let json = ok(&ember(&[
        "knn",
        path(&store),
        "--popular",
        "--filter",
        "year=1996..2000",
        "--json",
    ]));
    assert!(json.contains("\"id\":5") && !json.contains("\"id\":1,"), "{json}");
    // The default recall answers before the first round too.
    let table = ok(&ember(&["knn", path(&store), "--recommend", "1", "-k", "3"]));
    assert_eq!(table.lines().count(), 4, "{table}");
    // A bad filter is refused.
    let err = failed(&ember(&["knn", path(&store), "--popular", "--filter", "=x"]));
    assert!(err.contains("empty key"), "{err}");
    let err = failed(&ember(&["knn", path(&store), "--popular", "--filter", "genre"]));
    assert!(err.contains("KEY=VALUE"), "{err}");
}
