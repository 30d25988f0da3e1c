//! The data directory holds credentials and everyone's events: it is its owner's alone.

use std::os::unix::fs::PermissionsExt;

use affinity_store::sqlite::SqliteStore;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_data_directory_is_0700_and_the_database_0600_even_when_created_open() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    drop(SqliteStore::open(&dir).expect("open"));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("affinity.db")), 0o600);

    // A store left readable by an older version is tightened at the next open.
    std::fs::set_permissions(
        dir.join("affinity.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    drop(SqliteStore::open(&dir).expect("reopen"));
    assert_eq!(mode(&dir.join("affinity.db")), 0o600);
}
