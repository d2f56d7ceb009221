//! The file-system seam under all of `storage`: a small, synchronous, positional-I/O interface
//! ([`FileSystem`], [`FileHandle`]) with the real implementation ([`RealFs`], over `std::fs`)
//! and, beside it, a simulated disk (`SimFs`) that a deterministic test runs the real storage
//! code over.
//!
//! Owns exactly the operations storage performs and nothing else: no buffering, no retries, no
//! path logic. It must never hide an error or reorder anything: each call is one system call on
//! the real disk, and errors stay `std::io::Error` here (storage attaches the path). Listings
//! are sorted, so that code over any implementation behaves the same on every run.

use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// How [`FileSystem::open`] opens a file. Every mode but `Read` opens for reading and writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; created empty if missing, contents kept if present.
    Create,
    /// Read and write; created if missing, emptied if present.
    Truncate,
}

/// An open file, read and written at explicit positions (no shared cursor, so a handle needs no
/// `&mut` and cannot be left at a surprising position).
pub trait FileHandle: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `position`; 0 at or past the end.
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize>;

    /// Fills `buf` from `position`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut position: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, position) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ends before the bytes asked for",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    position += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `position`, extending the file (with zeros before `position` if
    /// it lies past the end).
    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()>;

    /// Cuts or zero-extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// The file's current length.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Makes the file's data and length durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's data and all its metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
}

/// The file-system operations storage needs. Directory entries a call creates, renames or
/// removes are durable only after [`FileSystem::sync_dir`] of their directory.
pub trait FileSystem: Send + Sync + Debug + 'static {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>>;

    /// The whole contents of a (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// The length of the file at `path`.
    fn file_len(&self, path: &Path) -> io::Result<u64>;

    /// Whether anything exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Whether `path` is a directory (false when nothing is there).
    fn is_dir(&self, path: &Path) -> bool;

    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Creates `dir` and any missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// The names of the entries of `dir`, sorted.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;

    /// Makes the entries of `dir` (created, renamed, removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The file system storage runs over, shared by every storage object of a node.
pub type Fs = Arc<dyn FileSystem>;

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// The real file system as an [`Fs`].
pub fn real_fs() -> Fs {
    Arc::new(RealFs)
}

impl FileSystem for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(mode != OpenMode::Read);
        match mode {
            OpenMode::Read | OpenMode::ReadWrite => {}
            OpenMode::Create => {
                options.create(true).truncate(false);
            }
            OpenMode::Truncate => {
                options.create(true).truncate(true);
            }
        }
        Ok(Box::new(RealFile(options.open(path)?)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut names = std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A real open file.
#[derive(Debug)]
struct RealFile(File);

impl FileHandle for RealFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, position)
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, position)
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.0, buf, position)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

/// Sequential reads over a [`FileHandle`] from a starting position, for code that wants
/// `std::io::Read` (e.g. behind a `BufReader`).
#[derive(Debug)]
pub struct HandleReader<'a> {
    handle: &'a dyn FileHandle,
    position: u64,
}

impl<'a> HandleReader<'a> {
    pub fn new(handle: &'a dyn FileHandle, position: u64) -> Self {
        HandleReader { handle, position }
    }
}

impl Read for HandleReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.handle.read_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}
