//! Sources and unit outputs in the object store, where every worker finds them:
//! `sources/SHA256/NAME` (content-addressed: put once, whoever asks) and `units/KEY/FILE`,
//! with the unit's record `units/KEY/unit.json` put last, so a record means a whole unit.

use crate::DispatchError;
use reel_publish::{file_sha256, Destination, ObjectMeta, ObjectStore, S3Options};
use reel_units::{UnitRecord, UnitStore};
use std::path::{Path, PathBuf};
use std::time::Duration;

const RECORD: &str = "unit.json";

/// How long a worker's URL to a source stays valid: longer than any unit's encode (a chunk
/// of a 4K title in AV1 takes hours on one machine), shorter than S3's limit of 7 days.
const SOURCE_URL_VALID: Duration = Duration::from_secs(24 * 3600);

/// How a worker reads a source from S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceAccess {
    /// By HTTP ranges: only what the decoder asks for.
    Ranges,
    /// From a whole local copy.
    Copy,
}

/// Where a worker's decoder reads a source.
pub struct SourceRead {
    /// The file (a local folder store), or the object's name for messages.
    pub path: PathBuf,
    /// The URL to read instead of `path`; it carries a signature, so it is never logged.
    pub url: Option<String>,
}

impl std::fmt::Debug for SourceRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRead")
            .field("path", &self.path)
            .field("url", &self.url.as_ref().map(|_| "(signed URL)"))
            .finish()
    }
}

/// The object store shared by a coordinator and its workers.
pub struct Objects {
    store: Box<dyn ObjectStore>,
    /// The folder, when the store is a local folder (workers read sources in place).
    folder: Option<PathBuf>,
}

impl Objects {
    /// Opens `url` (`s3://bucket/prefix`, `file://PATH` or a path).
    pub fn open(url: &str, s3: &S3Options) -> Result<Objects, DispatchError> {
        let dest = Destination::parse(url)?;
        let store = dest.open(s3)?;
        let folder = match &dest {
            Destination::Folder(_) => store.location().strip_prefix("file://").map(PathBuf::from),
            Destination::S3 { .. } => None,
        };
        Ok(Objects { store, folder })
    }

    pub fn location(&self) -> String {
        self.store.location()
    }

    /// Puts the source at `path` (whose SHA-256 is `sha256`) into the store, unless it is
    /// there already; its key.
    pub fn put_source(&self, path: &Path, sha256: &str) -> Result<String, DispatchError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().replace(['/', '\\'], "_"))
            .filter(|n| !n.starts_with('.'))
            .unwrap_or_else(|| "source".into());
        let key = format!("sources/{sha256}/{name}");
        let size = std::fs::metadata(path)
            .map_err(|source| DispatchError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if self.store.head(&key)?.is_some_and(|o| o.size == size) {
            return Ok(key);
        }
        let meta = ObjectMeta {
            content_type: "application/octet-stream".into(),
            cache_control: "private".into(),
            sha256: sha256.to_string(),
            size,
        };
        self.store.put_file(&key, path, &meta)?;
        Ok(key)
    }

    /// Where a worker's decoder reads the source `key` (SHA-256 `sha256`): the file itself in
    /// a local folder store. From S3, `Ranges` gives a URL to the object, valid for
    /// [`SOURCE_URL_VALID`], that the decoder reads by HTTP ranges, so a chunk costs the bytes
    /// of its own frames (and the index) instead of the whole mezzanine; a reader of ranges
    /// cannot hash the object, so its size and recorded SHA-256 are checked instead. `Copy`
    /// makes a local copy in `cache` (kept for the title's next unit), checked against the
    /// SHA-256 as it is written.
    pub fn source(
        &self,
        key: &str,
        sha256: &str,
        how: SourceAccess,
        cache: &Path,
    ) -> Result<SourceRead, DispatchError> {
        reel_publish::check_key(key)?;
        if let Some(folder) = &self.folder {
            let path = folder.join(key);
            if !path.is_file() {
                return Err(self.missing(key));
            }
            return Ok(SourceRead { path, url: None });
        }
        let object = self.store.head(key)?.ok_or_else(|| self.missing(key))?;
        if object.sha256.as_deref().is_some_and(|s| s != sha256) {
            return Err(DispatchError::Objects {
                location: self.location(),
                detail: format!("'{key}' is recorded with another SHA-256 than {sha256}"),
            });
        }
        match how {
            SourceAccess::Ranges => {
                let url = self.store.read_url(key, SOURCE_URL_VALID)?.ok_or_else(|| {
                    DispatchError::Objects {
                        location: self.location(),
                        detail: "this store gives no URL to read a source by ranges".into(),
                    }
                })?;
                Ok(SourceRead {
                    path: PathBuf::from(format!("{} ({})", key, self.location())),
                    url: Some(url),
                })
            }
            SourceAccess::Copy => Ok(SourceRead {
                path: self.source_copy(key, object.size, sha256, cache)?,
                url: None,
            }),
        }
    }

    /// A copy of the source `key` in `cache`, read from the store by ranges once.
    fn source_copy(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        cache: &Path,
    ) -> Result<PathBuf, DispatchError> {
        let name = key.rsplit('/').next().unwrap_or("source");
        let path = cache.join(sha256).join(name);
        if path.is_file() {
            return Ok(path);
        }
        reel_publish::copy_to_file(self.store.as_ref(), key, size, Some(sha256), &path)?;
        Ok(path)
    }

    /// Puts the finished unit `record` from `units` into the store: its files, then its record.
    pub fn put_unit(&self, units: &UnitStore, record: &UnitRecord) -> Result<(), DispatchError> {
        for (file, _) in record.files() {
            let path = units.file(&record.key, file);
            let content_type = if file.ends_with(".mp4") {
                "video/mp4"
            } else {
                "application/octet-stream"
            };
            self.put_private(&unit_key(&record.key, file), &path, content_type)?;
        }
        let path = units.file(&record.key, RECORD);
        self.put_private(&unit_key(&record.key, RECORD), &path, "application/json")
    }

    /// Puts the file at `path` under `key`, for workers and coordinators only (`private`),
    /// with its SHA-256.
    fn put_private(&self, key: &str, path: &Path, content_type: &str) -> Result<(), DispatchError> {
        let (sha256, size) = file_sha256(path)?;
        let meta = ObjectMeta {
            content_type: content_type.into(),
            cache_control: "private".into(),
            sha256,
            size,
        };
        self.store.put_file(key, path, &meta)?;
        Ok(())
    }

    /// The record of unit `key`, when the store holds it finished.
    pub fn unit_record(&self, key: &str) -> Result<Option<UnitRecord>, DispatchError> {
        let Some(bytes) = self.store.get(&unit_key(key, RECORD))? else {
            return Ok(None);
        };
        let record: UnitRecord =
            serde_json::from_slice(&bytes).map_err(|e| DispatchError::Objects {
                location: self.location(),
                detail: format!("'{}' is not a unit record: {e}", unit_key(key, RECORD)),
            })?;
        if record.key != key {
            return Err(DispatchError::Objects {
                location: self.location(),
                detail: format!(
                    "'{}' is the record of unit {}",
                    unit_key(key, RECORD),
                    record.key
                ),
            });
        }
        Ok(Some(record))
    }

    /// Copies the finished unit `record` from the store into `units` (whole, or not at all).
    pub fn get_unit(&self, record: &UnitRecord, units: &UnitStore) -> Result<(), DispatchError> {
        let tmp = units.begin(&record.key)?;
        for (file, bytes) in record.files() {
            // Synced by the commit.
            reel_publish::download(
                self.store.as_ref(),
                &unit_key(&record.key, file),
                bytes,
                &tmp.join(file),
            )?;
        }
        units.commit(tmp, record)?;
        Ok(())
    }

    fn missing(&self, key: &str) -> DispatchError {
        DispatchError::Objects {
            location: self.location(),
            detail: format!("'{key}' is not in the store"),
        }
    }
}

fn unit_key(key: &str, file: &str) -> String {
    format!("units/{key}/{file}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_units::{UnitOutput, UnitPictures};

    #[test]
    fn a_unit_goes_up_and_comes_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(
            dir.path().join("store").to_str().unwrap(),
            &S3Options::default(),
        )
        .unwrap();
        let here = UnitStore::open(&dir.path().join("here")).unwrap();
        let key = "00112233445566778899aabbccddeeff";
        let tmp = here.begin(key).unwrap();
        std::fs::write(tmp.join("720p.mp4"), vec![7u8; 9_000]).unwrap();
        std::fs::write(tmp.join(UnitPictures::THUMBNAILS), vec![9u8; 24]).unwrap();
        let record = UnitRecord {
            key: key.into(),
            unit: "chunk 0".into(),
            work: reel_units::UnitWork::Audio,
            outputs: vec![UnitOutput {
                track: 1,
                name: "720p".into(),
                file: "720p.mp4".into(),
                bytes: 9_000,
                samples: 3,
            }],
            thumbnails: Some(UnitPictures {
                file: UnitPictures::THUMBNAILS.into(),
                bytes: 24,
                frames: vec![0, 125],
                width: 4,
                height: 2,
            }),
            still: None,
            seconds: 1.0,
        };
        here.commit(tmp, &record).unwrap();
        assert!(objects.unit_record(key).unwrap().is_none());
        objects.put_unit(&here, &record).unwrap();
        assert_eq!(objects.unit_record(key).unwrap(), Some(record.clone()));

        let there = UnitStore::open(&dir.path().join("there")).unwrap();
        objects.get_unit(&record, &there).unwrap();
        assert_eq!(there.finished(key), Some(record));
        assert_eq!(
            std::fs::read(there.file(key, "720p.mp4")).unwrap(),
            vec![7u8; 9_000]
        );
        assert_eq!(
            std::fs::read(there.file(key, UnitPictures::THUMBNAILS)).unwrap(),
            vec![9u8; 24],
            "the thumbnails travel with the unit"
        );
    }

    #[test]
    fn a_source_is_put_once_and_read_in_place_from_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(
            dir.path().join("store").to_str().unwrap(),
            &S3Options::default(),
        )
        .unwrap();
        let src = dir.path().join("movie.mp4");
        std::fs::write(&src, b"not really a movie").unwrap();
        let (sha, _) = file_sha256(&src).unwrap();
        let key = objects.put_source(&src, &sha).unwrap();
        assert_eq!(key, format!("sources/{sha}/movie.mp4"));
        for how in [SourceAccess::Ranges, SourceAccess::Copy] {
            let read = objects.source(&key, &sha, how, dir.path()).unwrap();
            assert_eq!(read.url, None);
            assert_eq!(std::fs::read(read.path).unwrap(), b"not really a movie");
        }
        let other = format!("sources/{sha}/other.mp4");
        let err = objects
            .source(&other, &sha, SourceAccess::Ranges, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other.mp4") && err.contains("not in the store"),
            "{err}"
        );
    }
}
