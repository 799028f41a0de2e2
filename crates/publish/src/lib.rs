//! Publishing a packaged title to an object store: a local folder (the default, the embedded
//! case) or S3 and S3-compatible servers, behind one [`ObjectStore`] trait.
//!
//! [`publish`] uploads a set of files in tiers — media first (init segments and segments),
//! then variant playlists, then the top-level manifests, then the title record — so that no
//! client ever reads a manifest whose objects are missing. Uploads within a tier run in
//! parallel (bounded); every finished object is appended to a [`Journal`] with its SHA-256,
//! and a re-run skips what the journal says is already there with the same checksum.
//!
//! ```
//! use reel_publish::{publish, Destination, Journal, PublishOptions, Tier, Upload};
//! let dir = tempfile::tempdir().unwrap();
//! let src = dir.path().join("seg.m4s");
//! std::fs::write(&src, b"segment bytes").unwrap();
//! let store = Destination::parse(&format!("file://{}", dir.path().join("out").display()))
//!     .unwrap()
//!     .open(&Default::default())
//!     .unwrap();
//! let mut journal = Journal::open(&dir.path().join("published.jsonl")).unwrap();
//! let uploads = vec![Upload::new("title/seg.m4s", &src, Tier::Media, "video/mp4")];
//! let report = publish(store.as_ref(), &uploads, &mut journal, &PublishOptions::default(), &mut |_| {}).unwrap();
//! assert_eq!(report.uploaded, 1);
//! // Again: nothing to do.
//! let report = publish(store.as_ref(), &uploads, &mut journal, &PublishOptions::default(), &mut |_| {}).unwrap();
//! assert_eq!((report.uploaded, report.skipped), (0, 1));
//! ```

mod dest;
mod download;
mod journal;
mod local;
mod pending;
mod publish;
mod s3;

pub use dest::{Destination, S3Options};
pub use download::{copy_to_file, download, RANGE_BYTES};
pub use journal::{Journal, JournalEntry};
pub use local::LocalStore;
pub use publish::{
    content_type_for, publish, EarlyReport, EarlyUploads, PublishEvent, PublishOptions,
    PublishReport, Tier, Upload, CACHE_IMMUTABLE, CACHE_MANIFEST, CACHE_RECORD,
};
pub use s3::S3Store;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object key '{key}' is not allowed: {why}")]
    BadKey { key: String, why: &'static str },
    #[error("destination '{url}': {why}")]
    BadDestination { url: String, why: String },
    #[error("{location}: {operation} '{key}' failed: {detail}")]
    Store {
        location: String,
        operation: &'static str,
        key: String,
        detail: String,
    },
    #[error("{location}: '{key}' was stored with SHA-256 {stored}, expected {expected}")]
    ChecksumMismatch {
        location: String,
        key: String,
        stored: String,
        expected: String,
    },
    #[error("{path}: journal line {line}: {detail}")]
    Journal {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("publishing was cancelled")]
    Cancelled,
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What is sent with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: String,
    pub cache_control: String,
    /// Lower-case hex SHA-256 of the body.
    pub sha256: String,
    pub size: u64,
}

/// What a store knows of an object it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    /// The SHA-256 recorded with it, when the store keeps one.
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

/// A place objects are published to. Keys are relative, `/`-separated paths.
pub trait ObjectStore: Send + Sync {
    /// Where objects go, for messages and for the journal: `file:///abs/dir` or
    /// `s3://bucket/prefix`.
    fn location(&self) -> String;
    /// Stores the file at `source` under `key`, replacing what is there. The object appears
    /// whole or not at all.
    fn put_file(&self, key: &str, source: &Path, meta: &ObjectMeta) -> Result<(), PublishError>;
    /// The object under `key`, if there is one.
    fn head(&self, key: &str) -> Result<Option<StoredObject>, PublishError>;
    /// The object's bytes, if there is one (meant for small objects: manifests, records).
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PublishError>;
    /// Bytes `start..=end` of the object (the caller has checked the range against its
    /// size), if there is one. The default reads the whole object; stores that can read a
    /// range (S3's ranged GET) do.
    fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Vec<u8>>, PublishError> {
        Ok(self.get(key)?.map(|b| {
            let end = (end as usize).min(b.len().saturating_sub(1));
            b.get(start as usize..=end)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        }))
    }
    /// A URL from which an HTTP client may read the object under `key` by ranges for about
    /// `valid_for` without credentials of its own (S3: a presigned GET), so that a decoder
    /// reads only the bytes it needs. `None` for stores that are read as files.
    fn read_url(&self, key: &str, valid_for: Duration) -> Result<Option<String>, PublishError> {
        let _ = (key, valid_for);
        Ok(None)
    }
    /// Every key under `prefix` (`""` for all), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, PublishError>;
    /// Removes what an interrupted earlier upload left behind (a local store's temporary
    /// files); returns how many. Stores whose uploads are atomic have nothing to remove.
    fn remove_partials(&self) -> Result<usize, PublishError> {
        Ok(0)
    }
}

/// Checks that `key` is a relative path that stays inside the store: no empty, `.` or `..`
/// component, no backslash, no leading `/`, no control characters.
pub fn check_key(key: &str) -> Result<(), PublishError> {
    let bad = |why| {
        Err(PublishError::BadKey {
            key: key.to_string(),
            why,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("starts with '/'");
    }
    if key.contains('\\') {
        return bad("contains a backslash");
    }
    if key.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("has an empty, '.' or '..' component");
    }
    Ok(())
}

/// Every regular file under `root`, as (`/`-separated key relative to `root`, path), sorted by
/// key: how a folder maps onto object keys. A file or folder whose name ends `.partial` is
/// still being written (or was left by a run that stopped) and is not listed.
pub fn files_under(root: &Path) -> Result<Vec<(String, PathBuf)>, PublishError> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                continue;
            }
            let kind = entry.file_type().map_err(io_error(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let key = path
                    .strip_prefix(root)
                    .expect("under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((key, path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// SHA-256 of a file, lower-case hex, and its size; read through a 1 MiB buffer.
pub fn file_sha256(path: &Path) -> Result<(String, u64), PublishError> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_store() {
        for good in ["a", "title/720p/1.m4s", "t/manifest.mpd", "a b/c"] {
            check_key(good).unwrap();
        }
        for bad in [
            "", "/abs", "a/../b", "..", "a//b", "a/./b", "a\\b", "a/", "x\ny",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_being_written_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for folder in ["720p", ".text_en_subtitles.partial"] {
            std::fs::create_dir_all(d.join(folder)).unwrap();
            std::fs::write(d.join(folder).join("1.m4s"), b"x").unwrap();
        }
        std::fs::write(d.join("720p/2.m4s.partial"), b"x").unwrap();
        std::fs::write(d.join("manifest.mpd"), b"x").unwrap();
        let keys: Vec<String> = files_under(d).unwrap().into_iter().map(|f| f.0).collect();
        assert_eq!(keys, ["720p/1.m4s", "manifest.mpd"]);
    }

    #[test]
    fn sha256_of_a_file_is_the_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            file_sha256(&p).unwrap(),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
                3
            )
        );
    }
}
