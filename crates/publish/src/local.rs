//! A local folder as the object store: each key a file under the root, written under a
//! temporary name in the same folder and renamed into place.

use crate::{check_key, io_error, ObjectMeta, ObjectStore, PublishError, StoredObject};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Objects as files under `root`. Content type and cache headers are not stored: whoever
/// serves the folder derives them from the file names (see [`crate::content_type_for`]).
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    counter: AtomicU64,
}

const TEMP_MARK: &str = ".reel-tmp-";

impl LocalStore {
    /// A store rooted at `root` (created when missing; made absolute).
    pub fn new(root: &Path) -> Result<LocalStore, PublishError> {
        std::fs::create_dir_all(root).map_err(io_error(root))?;
        let root = std::fs::canonicalize(root).map_err(io_error(root))?;
        Ok(LocalStore {
            root,
            counter: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, PublishError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

impl ObjectStore for LocalStore {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn put_file(&self, key: &str, source: &Path, _meta: &ObjectMeta) -> Result<(), PublishError> {
        let dest = self.path(key)?;
        let dir = dest.parent().expect("a key has a file name");
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let name = dest
            .file_name()
            .expect("a key has a file name")
            .to_string_lossy();
        let tmp = dir.join(format!(
            ".{name}{TEMP_MARK}{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            std::fs::copy(source, &tmp).map_err(io_error(source))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_error(&tmp))?;
            std::fs::rename(&tmp, &dest).map_err(io_error(&dest))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn head(&self, key: &str) -> Result<Option<StoredObject>, PublishError> {
        let path = self.path(key)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(StoredObject {
                size: m.len(),
                sha256: None,
                content_type: None,
                cache_control: None,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    fn remove_partials(&self) -> Result<usize, PublishError> {
        let mine = format!("{TEMP_MARK}{}-", std::process::id());
        let mut removed = 0;
        for (key, path) in crate::files_under(&self.root)? {
            let name = key.rsplit('/').next().unwrap_or_default();
            if name.contains(TEMP_MARK) && !name.contains(&mine) {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, PublishError> {
        Ok(crate::files_under(&self.root)?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| !key.contains(TEMP_MARK) && key.starts_with(prefix))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            content_type: "video/mp4".into(),
            cache_control: crate::CACHE_IMMUTABLE.into(),
            sha256: String::new(),
            size: 0,
        }
    }

    #[test]
    fn put_replaces_whole_files_and_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("root")).unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"one").unwrap();
        store.put_file("t/a/1.m4s", &src, &meta()).unwrap();
        std::fs::write(&src, b"two!").unwrap();
        store.put_file("t/a/1.m4s", &src, &meta()).unwrap();
        store.put_file("t/b.mpd", &src, &meta()).unwrap();
        assert_eq!(store.get("t/a/1.m4s").unwrap().unwrap(), b"two!");
        assert_eq!(store.head("t/a/1.m4s").unwrap().unwrap().size, 4);
        assert_eq!(store.head("t/none").unwrap(), None);
        assert_eq!(store.list("").unwrap(), ["t/a/1.m4s", "t/b.mpd"]);
        assert_eq!(store.list("t/a").unwrap(), ["t/a/1.m4s"]);
        assert!(store.put_file("../escape", &src, &meta()).is_err());
        assert!(!dir.path().join("escape").exists());
        // A source that cannot be read leaves nothing behind.
        let err = store
            .put_file("t/c", &dir.path().join("missing"), &meta())
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert_eq!(store.list("").unwrap().len(), 2);
        assert_eq!(
            std::fs::read_dir(store.root().join("t")).unwrap().count(),
            2
        );
    }
}
