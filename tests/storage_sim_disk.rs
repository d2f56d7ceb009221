//! The real log over the simulated disk: what it reports as flushed survives a power loss, after
//! a process crash too, and the simulated disk is strict enough to catch a missing fsync.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use common::{batch, read_all};
use kraft::storage::{
    ElectionState, FileHandle, FileSystem, Fs, LogConfig, OffsetPolicy, OpenMode, QuorumStateFile,
    ReplicatedLog, SimFs, StorageError,
};
use kraft::types::{Epoch, NodeId, Offset, OffsetAndEpoch};

/// Small segments, so that a few batches roll the log.
const CONFIG: LogConfig = LogConfig {
    segment_bytes: 4096,
    index_interval_bytes: 512,
};

/// Seeds of the power losses each test tries: every torn-append outcome shows within these.
const SEEDS: u64 = 24;

fn log_dir() -> PathBuf {
    PathBuf::from("/data/__cluster_metadata-0")
}

fn open(fs: &Fs) -> ReplicatedLog {
    ReplicatedLog::open_in(fs, &log_dir(), CONFIG).unwrap().0
}

/// Appends `n` batches of about 1 KiB in epoch 1 without flushing.
fn append(log: &mut ReplicatedLog, n: usize) {
    for i in 0..n {
        let b = batch(log.log_end_offset().0, 1, 2, 500, i as u8);
        log.append(b, OffsetPolicy::Validate).unwrap();
    }
}

#[test]
fn what_a_reopened_log_reports_as_flushed_survives_power_loss() {
    for seed in 0..SEEDS {
        let disk = SimFs::new();
        let fs = disk.fs();
        let mut log = open(&fs);
        append(&mut log, 12);
        drop(log);
        disk.process_crash();

        let log = open(&fs);
        assert_eq!(log.flushed_offset(), log.log_end_offset());
        assert!(log.segment_files().len() > 1, "the appends rolled the log");
        let flushed = log.flushed_offset();
        let reported = read_all(&log);
        drop(log);
        disk.power_loss(seed);

        let log = open(&fs);
        assert_eq!(log.log_end_offset(), flushed, "seed {seed}");
        assert_eq!(read_all(&log), reported, "seed {seed}");
    }
}

#[test]
fn a_flushed_roll_survives_power_loss() {
    for seed in 0..SEEDS {
        let disk = SimFs::new();
        let fs = disk.fs();
        let mut log = open(&fs);
        append(&mut log, 12);
        log.flush().unwrap();
        let (flushed, files) = (log.flushed_offset(), log.segment_files());
        assert!(files.len() > 1);
        drop(log);
        disk.power_loss(seed);

        let log = open(&fs);
        assert_eq!(log.log_end_offset(), flushed, "seed {seed}");
        assert_eq!(log.segment_files(), files, "seed {seed}");
    }
}

#[test]
fn without_the_directory_fsync_a_rolled_segment_is_lost() {
    let disk = SimFs::new();
    let faulty = DirSyncFaults::new(disk.clone());
    let fs: Fs = faulty.clone();
    let mut log = open(&fs);
    append(&mut log, 2);
    log.flush().unwrap();
    faulty.set(DirSync::Skip);
    append(&mut log, 10);
    log.flush().unwrap();
    let files = log.segment_files();
    assert!(files.len() > 1);
    assert_eq!(log.flushed_offset(), log.log_end_offset());
    assert!(!disk.is_durable_entry(&files[1]));
    let second_base = segment_bases(&log)[1];
    drop(log);
    disk.power_loss(0);

    let log = open(&disk.fs());
    assert_eq!(log.log_end_offset(), Offset(second_base));
    assert_eq!(log.segment_files(), files[..1]);
    assert_eq!(log.log_start_offset(), Offset(0));
}

/// A flushed log of 12 appends over more than three segments, whose `truncate_to` the last
/// batch of the second segment failed at the directory fsync (the later segments removed, not
/// durably). Directory fsyncs still fail: the caller crashes the machine, then lets them pass.
/// Returns the segment bases before the truncation.
fn a_truncation_whose_directory_fsync_failed() -> (SimFs, Arc<DirSyncFaults>, Fs, Vec<i64>) {
    let disk = SimFs::new();
    let faulty = DirSyncFaults::new(disk.clone());
    let fs: Fs = faulty.clone();
    let mut log = open(&fs);
    append(&mut log, 12);
    log.flush().unwrap();
    let bases = segment_bases(&log);
    assert!(bases.len() > 3);
    faulty.set(DirSync::Fail);
    assert!(log.truncate_to(Offset(bases[2] - 2)).is_err());
    drop(log);
    (disk, faulty, fs, bases)
}

#[test]
fn removals_a_crash_left_unsynced_are_made_durable_by_the_next_open() {
    // The process "crashes" with the removals unsynced (and the second segment not yet cut: the
    // removals must be durable first).
    let (disk, faulty, fs, bases) = a_truncation_whose_directory_fsync_failed();
    let cut = Offset(bases[2] - 2);
    disk.process_crash();
    faulty.set(DirSync::Pass);

    let mut log = open(&fs);
    assert_eq!(log.log_end_offset(), Offset(bases[2]));
    log.truncate_to(cut).unwrap();
    // Other bytes of the same size: the log now ends exactly where the removed segments began.
    log.append(batch(cut.0, 1, 2, 500, 99), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    assert_eq!(log.log_end_offset(), Offset(bases[2]));
    let reported = read_all(&log);
    drop(log);
    disk.power_loss(0);

    let log = open(&fs);
    assert_eq!(log.segment_files().len(), 2, "removed segments came back");
    assert_eq!(read_all(&log), reported);
}

#[test]
fn a_failed_fsync_leaves_nothing_a_reopen_would_call_flushed() {
    let disk = SimFs::new();
    let fs = disk.fs();
    let mut log = open(&fs);
    append(&mut log, 2);
    log.flush().unwrap();
    let durable_end = log.log_end_offset();
    append(&mut log, 1);
    assert_eq!(log.segment_files().len(), 1);
    disk.fail_next_sync(&log.segment_files()[0]).unwrap();
    assert!(matches!(log.flush(), Err(StorageError::Io { .. })));
    assert!(matches!(
        log.append(
            batch(log.log_end_offset().0, 1, 1, 10, 0),
            OffsetPolicy::Validate
        ),
        Err(StorageError::Failed(_))
    ));
    drop(log);
    disk.process_crash();

    // The kernel marked the failed pages clean: a reopen that trusted the page cache would
    // fsync nothing and call them flushed, and a power loss would take them.
    let log = open(&fs);
    assert_eq!(log.log_end_offset(), durable_end);
    let reported = read_all(&log);
    drop(log);
    disk.power_loss(0);
    assert_eq!(read_all(&open(&fs)), reported);
}

#[test]
fn a_full_disk_fails_the_append_and_a_reopen_keeps_what_was_written() {
    let disk = SimFs::new();
    let fs = disk.fs();
    let mut log = open(&fs);
    append(&mut log, 2);
    log.flush().unwrap();
    disk.set_capacity(Some(disk_usage(&disk) + 1500));
    let err = (0..10)
        .find_map(|i| {
            let b = batch(log.log_end_offset().0, 1, 2, 500, i);
            log.append(b, OffsetPolicy::Validate).err()
        })
        .expect("the disk fills up");
    match err {
        StorageError::Io { source, .. } => {
            assert_eq!(source.kind(), io::ErrorKind::StorageFull)
        }
        other => panic!("{other}"),
    }
    assert!(matches!(log.flush(), Err(StorageError::Failed(_))));
    let end = log.log_end_offset();
    drop(log);
    disk.process_crash();
    disk.set_capacity(None);
    let log = open(&fs);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.flushed_offset(), end);
}

#[test]
fn quorum_state_is_old_or_new_after_power_loss() {
    let disk = SimFs::new();
    let faulty = DirSyncFaults::new(disk.clone());
    let fs: Fs = faulty.clone();
    kraft::storage::fsutil::create_dir_durably_in(&*fs, &log_dir()).unwrap();
    let state = |epoch| ElectionState {
        epoch: Epoch(epoch),
        leader_id: Some(NodeId(1)),
        voted_id: None,
        voted_directory_id: None,
    };
    let file = QuorumStateFile::new_in(&fs, &log_dir());
    file.write(&state(1)).unwrap();
    disk.power_loss(0);
    assert_eq!(file.read().unwrap(), Some(state(1)));
    // The rename happened but its directory fsync failed: reads see the new state, a power
    // loss brings back the old one, never a mix.
    faulty.set(DirSync::Fail);
    assert!(file.write(&state(2)).is_err());
    assert_eq!(file.read().unwrap(), Some(state(2)));
    disk.power_loss(0);
    assert_eq!(file.read().unwrap(), Some(state(1)));
    faulty.set(DirSync::Pass);
    file.write(&state(3)).unwrap();
    disk.power_loss(0);
    assert_eq!(file.read().unwrap(), Some(state(3)));
}

#[test]
fn a_finished_snapshot_survives_power_loss_and_an_interrupted_one_never_appears() {
    use kraft::storage::{
        SnapshotFile, SnapshotFileWriter, list_snapshots_in, remove_snapshot_leftovers_in,
    };
    let values = || (0..2000u32).map(|i| bytes::Bytes::from(i.to_be_bytes().repeat(64)));
    for seed in 0..8 {
        let disk = SimFs::new();
        let fs = disk.fs();
        let dir = log_dir();
        kraft::storage::fsutil::create_dir_durably_in(&*fs, &dir).unwrap();
        let done = OffsetAndEpoch {
            offset: Offset(10),
            epoch: Epoch(1),
        };
        let mut writer = SnapshotFileWriter::create_in(&fs, &dir, done, 0).unwrap();
        writer.append(values()).unwrap();
        writer.finish().unwrap();
        let interrupted = OffsetAndEpoch {
            offset: Offset(20),
            epoch: Epoch(1),
        };
        let mut writer = SnapshotFileWriter::create_in(&fs, &dir, interrupted, 0).unwrap();
        writer.append(values()).unwrap();
        // A crashed process runs no destructor.
        std::mem::forget(writer);
        disk.power_loss(seed);

        assert_eq!(list_snapshots_in(&fs, &dir).unwrap(), vec![done]);
        let mut count = 0;
        SnapshotFile::open_in(&fs, &dir, done)
            .unwrap()
            .for_each_value(|_| count += 1)
            .unwrap();
        assert_eq!(count, 2000);
        remove_snapshot_leftovers_in(&fs, &dir).unwrap();
        assert_eq!(
            disk.list(&dir),
            vec!["00000000000000000010-0000000001.checkpoint"]
        );
    }
}

/// Bytes all files on the disk hold.
fn disk_usage(disk: &SimFs) -> u64 {
    disk.list(&log_dir())
        .iter()
        .map(|name| disk.file_len(&log_dir().join(name)).unwrap())
        .sum()
}

fn segment_bases(log: &ReplicatedLog) -> Vec<i64> {
    log.segment_files()
        .iter()
        .map(|f| f.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect()
}

/// What [`DirSyncFaults`] does with a directory fsync.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum DirSync {
    Pass,
    /// Silently drop it: the bug the simulated disk must expose.
    Skip,
    /// Fail it, as a crash right before it would leave things.
    Fail,
}

/// The simulated disk with directory fsyncs the test can drop or fail.
#[derive(Debug)]
struct DirSyncFaults {
    disk: SimFs,
    mode: AtomicU8,
}

impl DirSyncFaults {
    fn new(disk: SimFs) -> Arc<Self> {
        Arc::new(DirSyncFaults {
            disk,
            mode: AtomicU8::new(DirSync::Pass as u8),
        })
    }

    fn set(&self, mode: DirSync) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

impl FileSystem for DirSyncFaults {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        self.disk.open(path, mode)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.disk.read(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.disk.file_len(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.disk.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.disk.is_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.disk.remove_file(path)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.disk.create_dir_all(dir)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        self.disk.read_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.mode.load(Ordering::SeqCst) {
            m if m == DirSync::Skip as u8 => Ok(()),
            m if m == DirSync::Fail as u8 => Err(io::Error::other("injected dir fsync failure")),
            _ => self.disk.sync_dir(dir),
        }
    }
}

/// A power loss inside `truncate_to` right before its directory fsync (simulated, as the test
/// above does for a process crash, by failing that fsync): the removals of the later segments
/// may come back, so the kept segment must not have been cut durably before them, or the log
/// would have an offset gap and recovery would refuse a node that only lost power.
#[test]
fn a_power_loss_inside_truncate_does_not_stop_the_node() {
    for seed in 0..SEEDS {
        let (disk, faulty, fs, bases) = a_truncation_whose_directory_fsync_failed();
        let cut = Offset(bases[2] - 2);
        disk.power_loss(seed);
        faulty.set(DirSync::Pass);

        match ReplicatedLog::open_in(&fs, &log_dir(), CONFIG) {
            Ok((log, _)) => assert!(log.log_end_offset() >= cut, "seed {seed}"),
            Err(e) => panic!("seed {seed}: a power loss inside truncate_to stops the node: {e}"),
        }
    }
}

/// The same gap, as recovery itself could make it: a truncation to 14 had durably cut the
/// checkpoint (epoch 2 forgotten) when the process died. Recovery completes it, and power is
/// lost right before its directory fsync: it must have removed the later segment durably
/// before cutting the one holding 14, so that the next start finds no gap.
#[test]
fn a_power_loss_while_recovery_completes_a_truncation_does_not_stop_the_node() {
    for seed in 0..SEEDS {
        let disk = SimFs::new();
        let faulty = DirSyncFaults::new(disk.clone());
        let fs: Fs = faulty.clone();
        let mut log = open(&fs);
        append(&mut log, 7);
        for i in 0..5 {
            let b = batch(log.log_end_offset().0, 2, 2, 500, i);
            log.append(b, OffsetPolicy::Validate).unwrap();
        }
        log.flush().unwrap();
        assert_eq!(segment_bases(&log), vec![0, 6, 12, 18]);
        drop(log);
        // What truncate_to(14) makes durable first, before a process crash.
        kraft::storage::fsutil::write_atomically_in(
            &*fs,
            &log_dir().join("leader-epoch-checkpoint"),
            b"0\n1\n1 0\n",
        )
        .unwrap();
        disk.process_crash();

        faulty.set(DirSync::Fail);
        assert!(ReplicatedLog::open_in(&fs, &log_dir(), CONFIG).is_err());
        disk.power_loss(seed);
        faulty.set(DirSync::Pass);

        match ReplicatedLog::open_in(&fs, &log_dir(), CONFIG) {
            Ok((log, _)) => assert_eq!(log.log_end_offset(), Offset(14), "seed {seed}"),
            Err(e) => panic!("seed {seed}: two crashes stop the node: {e}"),
        }
    }
}
