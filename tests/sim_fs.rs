//! The simulated disk behaves like a Linux disk with buffered I/O: reads see the page cache,
//! only fsynced data and dir-synced entries survive power loss, a process crash loses nothing,
//! a failed fsync drops its pages (fsyncgate), capacity gives ENOSPC, and damage at rest shows.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use kraft::storage::{FileHandle, FileSystem, OpenMode, SimFs};

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// A disk with a durable directory `/d`.
fn disk() -> SimFs {
    let disk = SimFs::new();
    disk.create_dir_all(&p("/d")).unwrap();
    disk.sync_dir(&p("/")).unwrap();
    disk
}

/// Creates `/d/<name>` holding `bytes`, its data synced, its entry optionally dir-synced.
fn durable_file(disk: &SimFs, name: &str, bytes: &[u8], dir_sync: bool) -> Box<dyn FileHandle> {
    let f = disk.open(&p("/d").join(name), OpenMode::Truncate).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_data().unwrap();
    if dir_sync {
        disk.sync_dir(&p("/d")).unwrap();
    }
    f
}

fn read_all(f: &dyn FileHandle) -> Vec<u8> {
    let mut buf = vec![0; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn reads_see_the_page_cache_and_only_syncs_reach_the_platter() {
    let disk = disk();
    let f = disk.open(&p("/d/a"), OpenMode::Create).unwrap();
    f.write_all_at(b"hello", 0).unwrap();
    assert_eq!(read_all(&*f), b"hello");
    assert_eq!(disk.cached_bytes(&p("/d/a")).unwrap(), b"hello");
    assert!(!disk.is_durable_entry(&p("/d/a")));
    assert_eq!(disk.durable_bytes(&p("/d/a")), None);
    disk.sync_dir(&p("/d")).unwrap();
    assert!(disk.is_durable_entry(&p("/d/a")));
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"");
    f.sync_data().unwrap();
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"hello");
    f.write_all_at(b"J", 0).unwrap();
    f.write_all_at(b"!", 10).unwrap();
    assert_eq!(read_all(&*f), b"Jello\0\0\0\0\0!");
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"hello");
    f.sync_all().unwrap();
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"Jello\0\0\0\0\0!");
}

#[test]
fn a_process_crash_loses_nothing_but_kills_open_handles() {
    let disk = disk();
    let f = disk.open(&p("/d/a"), OpenMode::Create).unwrap();
    f.write_all_at(b"unsynced", 0).unwrap();
    disk.process_crash();
    assert!(f.write_all_at(b"x", 0).is_err());
    assert!(f.read_at(&mut [0; 4], 0).is_err());
    assert!(f.sync_data().is_err());
    assert_eq!(disk.read(&p("/d/a")).unwrap(), b"unsynced");
    assert_eq!(disk.crash_counts(), (1, 0));
}

#[test]
fn power_loss_reverts_files_to_the_platter_and_kills_handles() {
    for seed in 0..32 {
        let disk = disk();
        let f = durable_file(&disk, "a", b"durable", true);
        f.write_all_at(b"DURABLE", 0).unwrap();
        f.set_len(3).unwrap();
        disk.power_loss(seed);
        assert!(f.read_at(&mut [0; 4], 0).is_err());
        assert_eq!(disk.read(&p("/d/a")).unwrap(), b"durable", "seed {seed}");
    }
}

#[test]
fn power_loss_keeps_at_most_a_torn_prefix_of_an_unsynced_append() {
    let synced = vec![1u8; 1000];
    let appended: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let (mut kept_none, mut kept_some, mut kept_garbled) = (0, 0, 0);
    for seed in 0..200 {
        let disk = disk();
        let f = durable_file(&disk, "a", &synced, true);
        f.write_all_at(&appended, synced.len() as u64).unwrap();
        disk.power_loss(seed);
        let after = disk.read(&p("/d/a")).unwrap();
        assert_eq!(after[..synced.len()], synced[..], "seed {seed}");
        let tail = &after[synced.len()..];
        assert!(tail.len() <= appended.len());
        // Only the last kept sector may differ from what was written.
        let last_sector = (after.len().saturating_sub(1) / 512 * 512).max(synced.len());
        let intact = last_sector - synced.len();
        assert_eq!(tail[..intact], appended[..intact], "seed {seed}");
        match (tail.is_empty(), tail == &appended[..tail.len()]) {
            (true, _) => kept_none += 1,
            (false, true) => kept_some += 1,
            (false, false) => kept_garbled += 1,
        }
        assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), after);
    }
    assert!(kept_none > 0 && kept_some > 0 && kept_garbled > 0);
}

#[test]
fn power_loss_is_a_function_of_its_seed() {
    let run = |seed| {
        let disk = disk();
        let f = durable_file(&disk, "a", b"x", true);
        f.write_all_at(&[7; 9000], 1).unwrap();
        disk.power_loss(seed);
        disk.read(&p("/d/a")).unwrap()
    };
    for seed in 0..20 {
        assert_eq!(run(seed), run(seed));
    }
}

#[test]
fn a_file_created_but_not_dir_synced_vanishes_on_power_loss() {
    let disk = disk();
    durable_file(&disk, "new", b"data", false);
    assert_eq!(disk.read(&p("/d/new")).unwrap(), b"data");
    disk.power_loss(1);
    assert!(!disk.exists(&p("/d/new")).unwrap());
    assert!(disk.list(&p("/d")).is_empty());
}

#[test]
fn dir_entries_are_durable_per_directory() {
    let disk = disk();
    disk.create_dir_all(&p("/d/e/f")).unwrap();
    disk.open(&p("/d/e/f/x"), OpenMode::Create).unwrap();
    disk.sync_dir(&p("/d/e/f")).unwrap();
    disk.sync_dir(&p("/d")).unwrap();
    // /d/e/f is not yet an entry of a synced /d/e, so x is unreachable after power loss.
    assert!(!disk.is_durable_entry(&p("/d/e/f/x")));
    disk.sync_dir(&p("/d/e")).unwrap();
    assert!(disk.is_durable_entry(&p("/d/e/f/x")));
    disk.power_loss(0);
    assert!(disk.exists(&p("/d/e/f/x")).unwrap());
}

#[test]
fn an_unsynced_rename_reverts_on_power_loss() {
    let disk = disk();
    durable_file(&disk, "state", b"old", true);
    durable_file(&disk, "state.tmp", b"new", true);
    disk.rename(&p("/d/state.tmp"), &p("/d/state")).unwrap();
    assert_eq!(disk.read(&p("/d/state")).unwrap(), b"new");
    assert_eq!(disk.durable_bytes(&p("/d/state")).unwrap(), b"old");
    disk.power_loss(0);
    assert_eq!(disk.read(&p("/d/state")).unwrap(), b"old");
    assert_eq!(disk.read(&p("/d/state.tmp")).unwrap(), b"new");

    disk.rename(&p("/d/state.tmp"), &p("/d/state")).unwrap();
    disk.sync_dir(&p("/d")).unwrap();
    disk.power_loss(0);
    assert_eq!(disk.read(&p("/d/state")).unwrap(), b"new");
    assert_eq!(disk.list(&p("/d")), vec!["state"]);
}

#[test]
fn an_unsynced_remove_of_a_durable_file_comes_back() {
    let disk = disk();
    durable_file(&disk, "a", b"kept", true);
    disk.remove_file(&p("/d/a")).unwrap();
    assert!(!disk.exists(&p("/d/a")).unwrap());
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"kept");
    disk.power_loss(0);
    assert_eq!(disk.read(&p("/d/a")).unwrap(), b"kept");
    disk.remove_file(&p("/d/a")).unwrap();
    disk.sync_dir(&p("/d")).unwrap();
    disk.power_loss(0);
    assert!(!disk.exists(&p("/d/a")).unwrap());
}

#[test]
fn an_unlinked_open_file_stays_readable() {
    let disk = disk();
    let f = durable_file(&disk, "a", b"still here", true);
    disk.remove_file(&p("/d/a")).unwrap();
    disk.sync_dir(&p("/d")).unwrap();
    assert_eq!(read_all(&*f), b"still here");
}

#[test]
fn a_failed_fsync_drops_the_dirty_pages_and_a_later_one_does_not_write_them() {
    let disk = disk();
    let f = durable_file(&disk, "a", b"old", true);
    f.write_all_at(b"new", 3).unwrap();
    disk.fail_next_sync(&p("/d/a")).unwrap();
    assert!(f.sync_data().is_err());
    assert_eq!(read_all(&*f), b"oldnew");
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"old");
    f.sync_data().unwrap();
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"old");
    for seed in 0..16 {
        let copy = disk.clone();
        copy.power_loss(seed);
        assert_eq!(copy.read(&p("/d/a")).unwrap(), b"old", "seed {seed}");
    }
}

#[test]
fn a_sync_after_fsyncgate_and_more_appends_leaves_a_hole() {
    let disk = disk();
    let f = durable_file(&disk, "a", b"old", true);
    f.write_all_at(b"lost", 3).unwrap();
    disk.fail_next_sync(&p("/d/a")).unwrap();
    assert!(f.sync_all().is_err());
    f.write_all_at(b"!", 7).unwrap();
    f.sync_all().unwrap();
    // The failed pages were marked clean: the page holding them is written again only
    // because the new byte dirtied it, and with it the cached bytes.
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), b"oldlost!");
    let g = durable_file(&disk, "b", &[1; 4096], true);
    g.write_all_at(&[2; 10], 4096).unwrap();
    disk.fail_next_sync(&p("/d/b")).unwrap();
    assert!(g.sync_data().is_err());
    g.write_all_at(&[3; 10], 8192).unwrap();
    g.sync_data().unwrap();
    let durable = disk.durable_bytes(&p("/d/b")).unwrap();
    assert_eq!(durable.len(), 8202);
    assert!(
        durable[4096..8192].iter().all(|b| *b == 0),
        "the lost page reads as a hole"
    );
}

#[test]
fn a_shrink_then_growth_reads_and_syncs_zeros() {
    let disk = disk();
    let f = durable_file(&disk, "a", &[9; 5000], true);
    f.set_len(100).unwrap();
    f.set_len(5000).unwrap();
    f.sync_data().unwrap();
    let mut expected = vec![9; 100];
    expected.resize(5000, 0);
    assert_eq!(read_all(&*f), expected);
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap(), expected);
}

#[test]
fn sync_faults_at_a_rate_are_reproducible() {
    let failures = |seed| {
        let disk = disk();
        disk.set_sync_fault_rate(300_000, seed);
        let f = durable_file(&disk, "a", b"", true);
        (0..100)
            .map(|i| {
                f.write_all_at(&[i], u64::from(i)).unwrap();
                f.sync_data().is_err()
            })
            .collect::<Vec<bool>>()
    };
    let a = failures(5);
    assert_eq!(a, failures(5));
    let n = a.iter().filter(|f| **f).count();
    assert!((15..=45).contains(&n), "{n} failures of 100 at 30%");
}

#[test]
fn a_full_disk_refuses_growth_and_changes_nothing() {
    let disk = disk();
    disk.set_capacity(Some(100));
    let f = disk.open(&p("/d/a"), OpenMode::Create).unwrap();
    f.write_all_at(&[1; 60], 0).unwrap();
    let g = disk.open(&p("/d/b"), OpenMode::Create).unwrap();
    let err = g.write_all_at(&[2; 50], 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert_eq!(g.len().unwrap(), 0);
    assert_eq!(g.set_len(41).unwrap_err().kind(), ErrorKind::StorageFull);
    g.write_all_at(&[2; 40], 0).unwrap();
    f.write_all_at(&[3; 60], 0).unwrap();
    assert_eq!(
        f.write_all_at(&[3], 60).unwrap_err().kind(),
        ErrorKind::StorageFull
    );
    f.set_len(10).unwrap();
    f.write_all_at(&[4; 50], 10).unwrap();
    assert_eq!(disk.read(&p("/d/a")).unwrap().len(), 60);
}

#[test]
fn damage_at_rest_shows_in_cache_and_platter() {
    let disk = disk();
    durable_file(&disk, "a", &[0; 8], true);
    disk.flip_bit(&p("/d/a"), 3, 2).unwrap();
    assert_eq!(disk.read(&p("/d/a")).unwrap()[3], 4);
    assert_eq!(disk.durable_bytes(&p("/d/a")).unwrap()[3], 4);
    assert!(disk.flip_bit(&p("/d/a"), 8, 0).is_err());
    disk.vanish(&p("/d/a")).unwrap();
    assert!(!disk.exists(&p("/d/a")).unwrap());
    disk.power_loss(0);
    assert!(!disk.exists(&p("/d/a")).unwrap());
}

#[test]
fn listings_are_sorted_and_errors_are_typed() {
    let disk = disk();
    for name in ["c", "a", "b.log", "00000000000000000010.log"] {
        disk.open(&Path::new("/d").join(name), OpenMode::Create)
            .unwrap();
    }
    disk.create_dir_all(&p("/d/z")).unwrap();
    assert_eq!(
        disk.read_dir(&p("/d")).unwrap(),
        vec!["00000000000000000010.log", "a", "b.log", "c", "z"]
    );
    assert!(disk.is_dir(&p("/d/z")) && !disk.is_dir(&p("/d/a")));
    let kind = |r: std::io::Result<_>| r.map(|_: Box<dyn FileHandle>| ()).unwrap_err().kind();
    assert_eq!(
        kind(disk.open(&p("/d/missing"), OpenMode::ReadWrite)),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(disk.open(&p("/nope/x"), OpenMode::Create)),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(disk.open(&p("/d/z"), OpenMode::Read)),
        ErrorKind::IsADirectory
    );
    let ro = disk.open(&p("/d/a"), OpenMode::Read).unwrap();
    assert_eq!(
        ro.write_all_at(b"x", 0).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        disk.read_dir(&p("/d/a")).unwrap_err().kind(),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        disk.remove_file(&p("/d/q")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(disk.file_len(&p("/d/a")).unwrap(), 0);
}
