//! A simulated disk behind the [`FileSystem`] seam: in memory, deterministic, and as unforgiving
//! as a Linux disk with buffered I/O (ext4/XFS semantics), so that a simulation can run the real
//! storage code and then crash it.
//!
//! Owns the difference between what reads see and what survives power loss:
//! * every file has its page-cache bytes and its platter bytes, with dirty 4 KiB pages and a
//!   dirty length; `sync_data`/`sync_all` write them to the platter;
//! * directory entries (create, rename, remove) are cached until `sync_dir` of their directory;
//! * [`SimFs::power_loss`] reverts everything to the platter and the durable entries, keeping at
//!   random a torn prefix of unsynced appends; [`SimFs::process_crash`] loses nothing;
//! * a failed fsync marks the dirty pages clean without writing them (Linux's "fsyncgate"), a
//!   capacity gives ENOSPC, and bits can rot at rest.
//!
//! It must never consult a clock or a global random source: every random choice comes from a
//! seed the harness passes, so a run is reproduced by its seed. Paths are taken as given (after
//! dropping `.` components); a path without a parent (`/`, the empty path) is the root, which
//! always exists.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::{FileHandle, FileSystem, Fs, OpenMode};

/// Unit of dirty tracking and writeback: the page size of the page cache.
const PAGE_BYTES: u64 = 4096;
/// Unit a torn write garbles: a disk sector.
const SECTOR_BYTES: u64 = 512;
/// Sync faults are given per million syncs, so that rare faults need no floating point.
const PER_MILLION: u64 = 1_000_000;

/// A deterministic in-memory disk. Clones share one disk: the harness keeps one while storage
/// holds another as its [`Fs`].
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

/// One file's contents, in the page cache and on the platter.
#[derive(Debug, Default)]
struct Inode {
    cache: Vec<u8>,
    platter: Vec<u8>,
    dirty_pages: BTreeSet<u64>,
    len_dirty: bool,
    fail_next_sync: bool,
    /// Live handles: an unlinked file stays readable and takes space until they close.
    open_handles: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Directory entries as reads see them.
    cached: BTreeMap<PathBuf, Entry>,
    /// Directory entries as they would be after a power loss.
    durable: BTreeMap<PathBuf, Entry>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Bumped by every crash; handles of an older generation are dead.
    generation: u64,
    capacity: Option<u64>,
    sync_faults: Option<(u64, Rng)>,
    process_crashes: u64,
    power_losses: u64,
}

/// splitmix64: tiny, seedable, and good enough to choose faults.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn normalize(path: &Path) -> PathBuf {
    path.components().collect()
}

fn is_root(path: &Path) -> bool {
    path.parent().is_none()
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory (simulated)", path.display()),
    )
}

fn error(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("{what} (simulated)"))
}

fn pages(start: u64, end: u64) -> std::ops::Range<u64> {
    if end <= start {
        return 0..0;
    }
    start / PAGE_BYTES..(end - 1) / PAGE_BYTES + 1
}

impl Inode {
    fn write(&mut self, buf: &[u8], position: u64) {
        let end = position + buf.len() as u64;
        if end > self.cache.len() as u64 {
            self.resize(end);
        }
        self.cache[position as usize..end as usize].copy_from_slice(buf);
        self.dirty_pages.extend(pages(position, end));
    }

    fn resize(&mut self, len: u64) {
        let old = self.cache.len() as u64;
        self.cache.resize(len as usize, 0);
        if len > old {
            // The page holding the old end already reads zeros past it, so only whole new pages
            // become dirty; a page a failed fsync cleaned stays clean unless written again.
            self.dirty_pages
                .extend(pages(old.div_ceil(PAGE_BYTES) * PAGE_BYTES, len));
        } else {
            // Truncation zeroes the tail of the page holding the new end, which dirties it.
            self.dirty_pages.retain(|p| *p < len.div_ceil(PAGE_BYTES));
            if !len.is_multiple_of(PAGE_BYTES) {
                self.dirty_pages.insert(len / PAGE_BYTES);
            }
        }
        self.len_dirty = true;
    }

    /// Writes the dirty pages and length to the platter, or, when told to fail, forgets that
    /// they were dirty without writing them (as Linux does after a writeback error).
    fn sync(&mut self) -> io::Result<()> {
        let pages = std::mem::take(&mut self.dirty_pages);
        let len_dirty = std::mem::take(&mut self.len_dirty);
        if std::mem::take(&mut self.fail_next_sync) {
            return Err(error(io::ErrorKind::Other, "fsync: input/output error"));
        }
        if len_dirty {
            self.platter.resize(self.cache.len(), 0);
        }
        let limit = self.platter.len().min(self.cache.len()) as u64;
        for page in pages {
            let start = (page * PAGE_BYTES).min(limit) as usize;
            let end = ((page + 1) * PAGE_BYTES).min(limit) as usize;
            self.platter[start..end].copy_from_slice(&self.cache[start..end]);
        }
        Ok(())
    }

    /// Bytes past the platter's end that writeback may have reached before power was lost:
    /// the run of still-dirty pages from there on.
    fn tearable_bytes(&self) -> u64 {
        let (start, end) = (self.platter.len() as u64, self.cache.len() as u64);
        let mut reach = start;
        while reach < end && self.dirty_pages.contains(&(reach / PAGE_BYTES)) {
            reach = ((reach / PAGE_BYTES + 1) * PAGE_BYTES).min(end);
        }
        reach - start
    }

    /// What power loss leaves: the platter, plus perhaps a torn prefix of the unsynced append
    /// whose last sector may be garbage or zeros.
    fn lose_power(&mut self, rng: &mut Rng) {
        let start = self.platter.len() as u64;
        let tearable = self.tearable_bytes();
        let mut survivor = std::mem::take(&mut self.platter);
        if tearable > 0 && rng.below(2) == 0 {
            let kept = 1 + rng.below(tearable);
            let end = start + kept;
            survivor.extend_from_slice(&self.cache[start as usize..end as usize]);
            let sector = ((end - 1) / SECTOR_BYTES * SECTOR_BYTES).max(start);
            match rng.below(3) {
                0 => survivor[sector as usize..].fill(0),
                1 => survivor[sector as usize..]
                    .iter_mut()
                    .for_each(|b| *b = rng.next() as u8),
                _ => {}
            }
        }
        *self = Inode {
            cache: survivor.clone(),
            platter: survivor,
            ..Inode::default()
        };
    }
}

impl State {
    fn entry(&self, path: &Path) -> Option<Entry> {
        if is_root(path) {
            return Some(Entry::Dir);
        }
        self.cached.get(path).copied()
    }

    fn inode_at(&self, path: &Path) -> io::Result<u64> {
        match self.entry(path) {
            Some(Entry::File(ino)) => Ok(ino),
            Some(Entry::Dir) => Err(error(io::ErrorKind::IsADirectory, "is a directory")),
            None => Err(not_found(path)),
        }
    }

    fn require_dir(&self, dir: &Path) -> io::Result<()> {
        match self.entry(dir) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File(_)) => Err(error(io::ErrorKind::NotADirectory, "not a directory")),
            None => Err(not_found(dir)),
        }
    }

    fn inode(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| error(io::ErrorKind::NotFound, "the file is gone"))
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.cache.len() as u64).sum()
    }

    /// Refuses growth past the capacity (changing nothing, like ENOSPC).
    fn reserve(&self, ino: u64, new_len: u64) -> io::Result<()> {
        let Some(capacity) = self.capacity else {
            return Ok(());
        };
        let old_len = self.inodes.get(&ino).map_or(0, |i| i.cache.len() as u64);
        let used = self.used_bytes() - old_len + new_len.max(old_len);
        if new_len > old_len && used > capacity {
            return Err(error(io::ErrorKind::StorageFull, "no space left on device"));
        }
        Ok(())
    }

    fn sync(&mut self, ino: u64) -> io::Result<()> {
        let injected = match &mut self.sync_faults {
            Some((per_million, rng)) => rng.below(PER_MILLION) < *per_million,
            None => false,
        };
        let inode = self.inode(ino)?;
        inode.fail_next_sync |= injected;
        inode.sync()
    }

    fn create_file(&mut self, path: &Path) -> io::Result<u64> {
        self.require_dir(parent(path))?;
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(ino, Inode::default());
        self.cached.insert(path.to_path_buf(), Entry::File(ino));
        Ok(ino)
    }

    /// Whether `path` and every directory above it are durable entries.
    fn durably_reachable(&self, path: &Path) -> bool {
        path.ancestors()
            .skip(1)
            .filter(|a| !is_root(a))
            .all(|a| self.durable.get(a) == Some(&Entry::Dir))
            && (is_root(path) || self.durable.contains_key(path))
    }

    /// Drops the inodes no entry names any more.
    fn collect_garbage(&mut self) {
        let named: BTreeSet<u64> = self
            .cached
            .values()
            .chain(self.durable.values())
            .filter_map(|e| match e {
                Entry::File(ino) => Some(*ino),
                Entry::Dir => None,
            })
            .collect();
        self.inodes
            .retain(|ino, inode| named.contains(ino) || inode.open_handles > 0);
    }

    /// Kills every open handle (a crash closes all file descriptors at once).
    fn close_all_handles(&mut self) {
        self.generation += 1;
        for inode in self.inodes.values_mut() {
            inode.open_handles = 0;
        }
        self.collect_garbage();
    }

    fn children<'a>(
        map: &'a BTreeMap<PathBuf, Entry>,
        dir: &'a Path,
    ) -> impl Iterator<Item = (&'a PathBuf, &'a Entry)> + 'a {
        map.iter().filter(move |(p, _)| parent(p) == dir)
    }
}

impl SimFs {
    /// An empty disk of unlimited capacity.
    pub fn new() -> Self {
        SimFs::default()
    }

    /// This disk as the [`Fs`] storage takes.
    pub fn fs(&self) -> Fs {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves no half-applied operation (every
        // operation checks before it mutates), so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes all files hold now (as reads see them).
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Limits the bytes all files may hold together; growth beyond fails with `StorageFull`.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Makes the next sync of the file at `path` fail and drop its dirty pages unwritten.
    pub fn fail_next_sync(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.inode_at(&normalize(path))?;
        state.inode(ino)?.fail_next_sync = true;
        Ok(())
    }

    /// Makes each file sync fail with probability `per_million` / 1 000 000, drawn from `seed`
    /// (0 turns it off).
    pub fn set_sync_fault_rate(&self, per_million: u64, seed: u64) {
        self.lock().sync_faults = (per_million > 0).then_some((per_million, Rng(seed)));
    }

    /// The process died (kill -9, panic): the page cache survives, so nothing is lost. Open
    /// handles stop working, which catches a storage object that outlives its "process".
    pub fn process_crash(&self) {
        let mut state = self.lock();
        state.close_all_handles();
        state.process_crashes += 1;
    }

    /// The machine lost power: files revert to their platter bytes (each perhaps keeping a torn
    /// prefix of its unsynced append, chosen by `seed`) and directories to their durable entries.
    /// Open handles stop working.
    pub fn power_loss(&self, seed: u64) {
        let mut rng = Rng(seed);
        let mut state = self.lock();
        let survivors: BTreeMap<PathBuf, Entry> = state
            .durable
            .iter()
            .filter(|(p, _)| state.durably_reachable(p))
            .map(|(p, e)| (p.clone(), *e))
            .collect();
        state.cached = survivors.clone();
        state.durable = survivors;
        state.close_all_handles();
        for inode in state.inodes.values_mut() {
            inode.lose_power(&mut rng);
        }
        state.power_losses += 1;
    }

    /// How many process crashes and power losses this disk has seen.
    pub fn crash_counts(&self) -> (u64, u64) {
        let state = self.lock();
        (state.process_crashes, state.power_losses)
    }

    /// Flips one bit of a file at rest (cache and platter alike), as media corruption would.
    pub fn flip_bit(&self, path: &Path, byte: u64, bit: u8) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.inode_at(&normalize(path))?;
        let inode = state.inode(ino)?;
        if byte >= inode.cache.len() as u64 && byte >= inode.platter.len() as u64 {
            return Err(error(io::ErrorKind::InvalidInput, "byte past the end"));
        }
        for bytes in [&mut inode.cache, &mut inode.platter] {
            if let Some(b) = bytes.get_mut(byte as usize) {
                *b ^= 1 << (bit % 8);
            }
        }
        Ok(())
    }

    /// Removes a file for good, from the cache and the durable entries alike.
    pub fn vanish(&self, path: &Path) -> io::Result<()> {
        let path = normalize(path);
        let mut state = self.lock();
        state.inode_at(&path)?;
        state.cached.remove(&path);
        state.durable.remove(&path);
        state.collect_garbage();
        Ok(())
    }

    /// What a power loss now would leave of the file at `path` (before any torn append): its
    /// platter bytes if its entry and every directory above it are durable.
    pub fn durable_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let path = normalize(path);
        let state = self.lock();
        match state.durable.get(&path) {
            Some(Entry::File(ino)) if state.durably_reachable(&path) => {
                state.inodes.get(ino).map(|i| i.platter.clone())
            }
            _ => None,
        }
    }

    /// What a read of the file at `path` sees now.
    pub fn cached_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let ino = state.inode_at(&normalize(path)).ok()?;
        state.inodes.get(&ino).map(|i| i.cache.clone())
    }

    /// The names in `dir` as reads see them, sorted.
    pub fn list(&self, dir: &Path) -> Vec<OsString> {
        let dir = normalize(dir);
        let state = self.lock();
        State::children(&state.cached, &dir)
            .filter_map(|(p, _)| p.file_name().map(OsString::from))
            .collect()
    }

    /// Whether the entry at `path` (and every directory above it) would survive a power loss.
    pub fn is_durable_entry(&self, path: &Path) -> bool {
        self.lock().durably_reachable(&normalize(path))
    }
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never block: this may be formatted while an operation holds the lock.
        let Ok(state) = self.state.try_lock() else {
            return f.write_str("SimFs { <busy> }");
        };
        f.debug_struct("SimFs")
            .field("entries", &state.cached.len())
            .field("files", &state.inodes.len())
            .field("used_bytes", &state.used_bytes())
            .field("capacity", &state.capacity)
            .finish()
    }
}

impl FileSystem for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let path = normalize(path);
        let mut state = self.lock();
        let ino = match (state.entry(&path), mode) {
            (None, OpenMode::Create | OpenMode::Truncate) => state.create_file(&path)?,
            _ => state.inode_at(&path)?,
        };
        if mode == OpenMode::Truncate {
            let inode = state.inode(ino)?;
            if !inode.cache.is_empty() {
                inode.resize(0);
            }
        }
        state.inode(ino)?.open_handles += 1;
        Ok(Box::new(SimFile {
            disk: self.clone(),
            ino,
            generation: state.generation,
            writable: mode != OpenMode::Read,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.lock();
        let ino = state.inode_at(&normalize(path))?;
        Ok(state.inode(ino)?.cache.clone())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let mut state = self.lock();
        let ino = state.inode_at(&normalize(path))?;
        Ok(state.inode(ino)?.cache.len() as u64)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().entry(&normalize(path)).is_some())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lock().entry(&normalize(path)) == Some(Entry::Dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (normalize(from), normalize(to));
        let mut state = self.lock();
        let ino = state.inode_at(&from)?;
        state.require_dir(parent(&to))?;
        if state.entry(&to) == Some(Entry::Dir) {
            return Err(error(
                io::ErrorKind::IsADirectory,
                "rename onto a directory",
            ));
        }
        state.cached.remove(&from);
        state.cached.insert(to, Entry::File(ino));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = normalize(path);
        let mut state = self.lock();
        state.inode_at(&path)?;
        state.cached.remove(&path);
        state.collect_garbage();
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = normalize(dir);
        let mut state = self.lock();
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| state.entry(a).is_none())
            .map(Path::to_path_buf)
            .collect();
        if let Some(first) = missing.last() {
            state.require_dir(parent(first))?;
        } else {
            state.require_dir(&dir)?;
        }
        for created in missing.into_iter().rev() {
            state.cached.insert(created, Entry::Dir);
        }
        Ok(())
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let dir = normalize(dir);
        self.lock().require_dir(&dir)?;
        Ok(self.list(&dir))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = normalize(dir);
        let mut state = self.lock();
        state.require_dir(&dir)?;
        let cached: Vec<(PathBuf, Entry)> = State::children(&state.cached, &dir)
            .map(|(p, e)| (p.clone(), *e))
            .collect();
        state.durable.retain(|p, _| parent(p) != dir);
        state.durable.extend(cached);
        state.collect_garbage();
        Ok(())
    }
}

/// An open file of a [`SimFs`]; dead after a crash.
#[derive(Debug)]
struct SimFile {
    disk: SimFs,
    ino: u64,
    generation: u64,
    writable: bool,
}

impl SimFile {
    /// Runs `f` on the file's inode if this handle is still alive.
    fn with<T>(
        &self,
        write: bool,
        f: impl FnOnce(&mut State, u64) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return Err(error(
                io::ErrorKind::Other,
                "stale file handle: its process crashed",
            ));
        }
        if write && !self.writable {
            return Err(error(
                io::ErrorKind::PermissionDenied,
                "file not open for writing",
            ));
        }
        state.inode(self.ino)?;
        f(&mut state, self.ino)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return;
        }
        if let Some(inode) = state.inodes.get_mut(&self.ino) {
            inode.open_handles = inode.open_handles.saturating_sub(1);
        }
        state.collect_garbage();
    }
}

impl FileHandle for SimFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        self.with(false, |state, ino| {
            let cache = &state.inode(ino)?.cache;
            let start = (position.min(cache.len() as u64)) as usize;
            let n = buf.len().min(cache.len() - start);
            buf[..n].copy_from_slice(&cache[start..start + n]);
            Ok(n)
        })
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.with(true, |state, ino| {
            state.reserve(ino, position + buf.len() as u64)?;
            state.inode(ino)?.write(buf, position);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(true, |state, ino| {
            state.reserve(ino, len)?;
            let inode = state.inode(ino)?;
            if len != inode.cache.len() as u64 {
                inode.resize(len);
            }
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(false, |state, ino| Ok(state.inode(ino)?.cache.len() as u64))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(false, State::sync)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.with(false, State::sync)
    }
}
