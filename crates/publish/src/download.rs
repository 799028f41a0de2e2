//! Reading an object back whole into a file, by ranged GETs.

use crate::{ObjectStore, PublishError};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Ranged reads go in pieces of this size: memory stays bounded whatever the object's size.
pub const RANGE_BYTES: u64 = 8 << 20;

/// Writes object `key` of `store`, `size` bytes long, to a new file at `path` by ranged GETs
/// of [`RANGE_BYTES`]; returns the file (not yet synced) and the SHA-256 (hex) of what was
/// written. A missing object, or a range that comes back short, is an error naming the key.
pub fn download(
    store: &dyn ObjectStore,
    key: &str,
    size: u64,
    path: &Path,
) -> Result<(std::fs::File, String), PublishError> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let io = |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    };
    let failed = |detail: String| PublishError::Store {
        location: store.location(),
        operation: "get",
        key: key.to_string(),
        detail,
    };
    let mut file = std::fs::File::create(path).map_err(io)?;
    let mut start = 0;
    while start < size {
        let end = (start + RANGE_BYTES).min(size) - 1;
        let bytes = store
            .get_range(key, start, end)?
            .ok_or_else(|| failed("the object is not in the store".into()))?;
        if bytes.len() as u64 != end - start + 1 {
            return Err(failed(format!(
                "bytes {start}-{end} came back as {} bytes (the object should be {size} bytes)",
                bytes.len()
            )));
        }
        file.write_all(&bytes).map_err(io)?;
        hasher.update(&bytes);
        start = end + 1;
    }
    Ok((file, hex::encode(hasher.finalize())))
}

/// Copies object `key` of `store` (`size` bytes) to a file at `path`, whole or not at all:
/// written under a temporary name beside it (its own for each call, so two threads copying
/// the same object do not share one), synced, checked against `expected` (SHA-256, hex) when
/// given, then renamed into place. Returns the copy's SHA-256. A mismatch removes the
/// temporary file and is an error naming the key and both hashes.
pub fn copy_to_file(
    store: &dyn ObjectStore,
    key: &str,
    size: u64,
    expected: Option<&str>,
    path: &Path,
) -> Result<String, PublishError> {
    static COPIES: AtomicU64 = AtomicU64::new(0);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PublishError::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = COPIES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (file, got) = download(store, key, size, &tmp)?;
    file.sync_all().map_err(io(&tmp))?;
    if let Some(expected) = expected.filter(|e| *e != got) {
        let _ = std::fs::remove_file(&tmp);
        return Err(PublishError::ChecksumMismatch {
            location: store.location(),
            key: key.to_string(),
            stored: got,
            expected: expected.to_string(),
        });
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalStore, ObjectMeta};

    /// A folder store in `dir` holding `body` under `key`; its SHA-256 and size.
    fn store_with(dir: &Path, key: &str, body: &[u8]) -> (LocalStore, String, u64) {
        let store = LocalStore::new(&dir.join("store")).unwrap();
        let src = dir.join("src");
        std::fs::write(&src, body).unwrap();
        let (sha256, size) = crate::file_sha256(&src).unwrap();
        let meta = ObjectMeta {
            content_type: "application/octet-stream".into(),
            cache_control: "private".into(),
            sha256: sha256.clone(),
            size,
        };
        store.put_file(key, &src, &meta).unwrap();
        (store, sha256, size)
    }

    #[test]
    fn an_object_comes_back_whole_over_several_ranges_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..(RANGE_BYTES + 1000)).map(|i| (i % 251) as u8).collect();
        let (store, sha256, size) = store_with(dir.path(), "a/b", &body);
        let out = dir.path().join("out");
        let (_, got) = download(&store, "a/b", size, &out).unwrap();
        assert_eq!(got, sha256);
        assert_eq!(std::fs::read(&out).unwrap(), body);
        // Told the object is longer than it is: the last range comes back short.
        let e = download(&store, "a/b", size + 10, &out).unwrap_err();
        assert!(e.to_string().contains("'a/b'"), "{e}");
        assert!(e.to_string().contains("came back as"), "{e}");
        let e = download(&store, "a/none", 5, &out).unwrap_err();
        assert!(e.to_string().contains("not in the store"), "{e}");
    }

    #[test]
    fn a_copy_is_renamed_into_place_only_when_its_hash_is_the_expected_one() {
        let dir = tempfile::tempdir().unwrap();
        let (store, sha256, size) = store_with(dir.path(), "m/a.mov", b"mezzanine bytes");
        let copies = dir.path().join("copies");
        let path = copies.join("a.mov");
        let e = copy_to_file(&store, "m/a.mov", size, Some(&"0".repeat(64)), &path).unwrap_err();
        assert!(
            e.to_string().contains("'m/a.mov'") && e.to_string().contains(&sha256),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(&copies).unwrap().count(),
            0,
            "a temporary file stayed"
        );
        assert_eq!(
            copy_to_file(&store, "m/a.mov", size, Some(&sha256), &path).unwrap(),
            sha256
        );
        assert_eq!(
            copy_to_file(&store, "m/a.mov", size, None, &path).unwrap(),
            sha256
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"mezzanine bytes");
        assert_eq!(std::fs::read_dir(&copies).unwrap().count(), 1);
    }
}
