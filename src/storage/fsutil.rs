//! Durable file operations: the tmp → fsync → rename → fsync-directory protocol every state file
//! uses, so that a crash leaves either the old or the new contents, never a half-written file.
//!
//! Owns only these protocols, over whatever [`FileSystem`] it is handed (the functions without
//! `_in` use the real one). It must never return before what it wrote is durable, and never
//! open a directory as a file to fsync it (that is [`FileSystem::sync_dir`]'s job).

use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};
use super::fs::{FileSystem, OpenMode, RealFs};

/// Suffix of the temporary file a state file is written to before the rename.
pub const TMP_SUFFIX: &str = ".tmp";

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `contents` atomically and durably, on the real file system.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    write_atomically_in(&RealFs, path, contents)
}

/// Replaces `path` with `contents` atomically and durably.
pub fn write_atomically_in(
    fs: &dyn FileSystem,
    path: &Path,
    contents: &[u8],
) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    let file = fs.open(&tmp, OpenMode::Truncate).at(&tmp)?;
    file.write_all_at(contents, 0).at(&tmp)?;
    file.sync_all().at(&tmp)?;
    drop(file);
    fs.rename(&tmp, path).at(path)?;
    fsync_dir_in(fs, parent(path))
}

/// Makes a directory's entries (created, renamed or deleted files) durable, on the real file
/// system.
pub fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    fsync_dir_in(&RealFs, dir)
}

/// Makes a directory's entries (created, renamed or deleted files) durable.
pub fn fsync_dir_in(fs: &dyn FileSystem, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir).at(dir)
}

/// Creates `dir` (and missing parents) durably, on the real file system.
pub fn create_dir_durably(dir: &Path) -> Result<(), StorageError> {
    create_dir_durably_in(&RealFs, dir)
}

/// Creates `dir` (and missing parents) and makes every directory it created durable, by
/// fsyncing the parent of each, deepest last.
pub fn create_dir_durably_in(fs: &dyn FileSystem, dir: &Path) -> Result<(), StorageError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !fs.is_dir(d))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir).at(dir)?;
    for created in missing.iter().rev() {
        fsync_dir_in(fs, parent(created))?;
    }
    Ok(())
}

/// Deletes leftover `*.tmp` files of interrupted atomic writes in `dir` (real file system).
pub fn remove_stale_tmp_files(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    remove_stale_tmp_files_in(&RealFs, dir)
}

/// Deletes leftover `*.tmp` files of interrupted atomic writes in `dir`; returns their paths.
pub fn remove_stale_tmp_files_in(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<Vec<PathBuf>, StorageError> {
    let mut removed = Vec::new();
    for name in fs.read_dir(dir).at(dir)? {
        let path = dir.join(name);
        if path.extension().is_some_and(|e| e == &TMP_SUFFIX[1..]) && !fs.is_dir(&path) {
            fs.remove_file(&path).at(&path)?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        fsync_dir_in(fs, dir)?;
    }
    Ok(removed)
}

/// The length of the file at `path`, or `None` when there is none.
pub(crate) fn len_if_exists(fs: &dyn FileSystem, path: &Path) -> Result<Option<u64>, StorageError> {
    match fs.file_len(path) {
        Ok(len) => Ok(Some(len)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// The whole of a small state file, or `None` when there is none. A file longer than
/// `max_bytes` is not the state file it should be: an error naming it, never read into memory.
pub(crate) fn read_small_file(
    fs: &dyn FileSystem,
    path: &Path,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let Some(len) = len_if_exists(fs, path)? else {
        return Ok(None);
    };
    if len > max_bytes {
        return Err(StorageError::corrupt(
            path,
            format!("{len} bytes is too large"),
        ));
    }
    fs.read(path).at(path).map(Some)
}

/// Removes the file at `path`; a file already gone is no error.
pub(crate) fn remove_if_exists(fs: &dyn FileSystem, path: &Path) -> Result<bool, StorageError> {
    match fs.remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io(path, e)),
    }
}
