//! Durable file operations: the tmp → fsync → rename → fsync-directory protocol every state file
//! uses, so that a crash leaves either the old or the new contents, never a half-written file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};

/// Suffix of the temporary file a state file is written to before the rename.
pub const TMP_SUFFIX: &str = ".tmp";

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `contents` atomically and durably.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).at(&tmp)?;
    file.write_all(contents).at(&tmp)?;
    file.sync_all().at(&tmp)?;
    drop(file);
    fs::rename(&tmp, path).at(path)?;
    fsync_dir(parent(path))
}

/// Makes a directory's entries (created, renamed or deleted files) durable.
pub fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).at(dir)?.sync_all().at(dir)
}

/// Creates `dir` (and missing parents) and makes every directory it created durable, by
/// fsyncing the parent of each, deepest last.
pub fn create_dir_durably(dir: &Path) -> Result<(), StorageError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.is_dir())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir).at(dir)?;
    for created in missing.iter().rev() {
        fsync_dir(parent(created))?;
    }
    Ok(())
}

/// Deletes leftover `*.tmp` files of interrupted atomic writes in `dir`; returns their paths.
pub fn remove_stale_tmp_files(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if path.extension().is_some_and(|e| e == &TMP_SUFFIX[1..]) && path.is_file() {
            fs::remove_file(&path).at(&path)?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(removed)
}
