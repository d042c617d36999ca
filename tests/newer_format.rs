//! Files written by a newer emberdb are refused as such (`NewerFormat`),
//! not reported as corruption: a log record and a metadata record whose
//! version is above this build's, each with valid checksums.

use emberdb::{Durability, Error, Event, Options, Store};

fn store_with_one_logged_event(dir: &std::path::Path) {
    let store = Store::open(dir, Options::new(4).durability(Durability::Sync)).unwrap();
    store.append_event(Event::new(1, 2, 3)).unwrap();
    store.close_without_checkpoint();
}

#[test]
fn a_log_record_of_a_newer_version_is_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_logged_event(dir.path());
    let wal = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    // File header (32 bytes), then the frame: len, payload crc, header crc.
    let frame = 32;
    let len = u32::from_le_bytes(bytes[frame..frame + 4].try_into().unwrap()) as usize;
    let payload = frame + 12;
    bytes[payload] = 4; // the record version (this build reads 1 to 3)
    let crc = crc32fast::hash(&bytes[payload..payload + len]);
    bytes[frame + 4..frame + 8].copy_from_slice(&crc.to_le_bytes());
    let header_crc = crc32fast::hash(&bytes[frame..frame + 8]);
    bytes[frame + 8..frame + 12].copy_from_slice(&header_crc.to_le_bytes());
    std::fs::write(&wal, &bytes).unwrap();

    match Store::open(dir.path(), Options::new(4)) {
        Err(Error::NewerFormat {
            path,
            found: 4,
            supported: 3,
        }) => assert_eq!(path, wal),
        Err(other) => panic!("expected NewerFormat, got {other}"),
        Ok(_) => panic!("a newer log record was accepted"),
    }
}

#[test]
fn a_metadata_record_of_a_newer_version_is_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_logged_event(dir.path());
    let db = std::fs::read_dir(dir.path().join("meta"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("db-"))
        .unwrap();
    {
        let db = sled::open(&db).unwrap();
        let catalog = db.open_tree("catalog").unwrap();
        let mut manifest = catalog.get(b"manifest").unwrap().unwrap().to_vec();
        // The envelope's version (u16 LE); its crc covers the body only.
        manifest[0] = 2;
        catalog.insert(b"manifest", manifest).unwrap();
        db.flush().unwrap();
    }
    match Store::open(dir.path(), Options::new(4)) {
        Err(Error::NewerFormat {
            path,
            found: 2,
            supported: 1,
        }) => {
            assert!(path.to_string_lossy().contains("manifest"), "{}", path.display())
        }
        Err(other) => panic!("expected NewerFormat, got {other}"),
        Ok(_) => panic!("a newer metadata record was accepted"),
    }
}
