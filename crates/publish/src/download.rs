//! Reading an object back whole into a file, by ranged GETs.

use crate::{ObjectStore, PublishError};
use std::io::Write;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalStore, ObjectMeta};

    #[test]
    fn an_object_comes_back_whole_over_several_ranges_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("store")).unwrap();
        let body: Vec<u8> = (0..(RANGE_BYTES + 1000)).map(|i| (i % 251) as u8).collect();
        let src = dir.path().join("src");
        std::fs::write(&src, &body).unwrap();
        let (sha256, size) = crate::file_sha256(&src).unwrap();
        let meta = ObjectMeta {
            content_type: "application/octet-stream".into(),
            cache_control: "private".into(),
            sha256: sha256.clone(),
            size,
        };
        store.put_file("a/b", &src, &meta).unwrap();
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
}
