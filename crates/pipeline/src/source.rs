//! Getting the title's source onto this machine: a file is used in place; an object in S3 is
//! copied into the work folder by ranged GETs (bounded memory), checked against the SHA-256
//! recorded with it when there is one, under a temporary name renamed when whole. A later
//! run reuses the copy while the object's size and recorded SHA-256 still match it.

use crate::job::SourceLocation;
use crate::PipelineError;
use reel_publish::{ObjectStore, S3Store};
use std::path::{Path, PathBuf};

/// The folder of the work folder that holds a copied source.
const SOURCE_DIR: &str = "source";

/// A local file with the source of `location`; `on_copy` hears of a copy before it starts.
pub(crate) fn local_source(
    location: &SourceLocation,
    work: &Path,
    on_copy: &mut dyn FnMut(String),
) -> Result<PathBuf, PipelineError> {
    let (bucket, key, options) = match location {
        SourceLocation::File(path) => {
            if !path.is_file() {
                return Err(PipelineError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "source not found"),
                });
            }
            return Ok(path.clone());
        }
        SourceLocation::S3 {
            bucket,
            key,
            options,
        } => (bucket, key, options),
    };
    let name = location.name();
    let store = S3Store::new(bucket, "", options)?;
    let object = store.head(key)?.ok_or_else(|| PipelineError::Io {
        path: PathBuf::from(&name),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "source not found"),
    })?;
    let file_name = key.rsplit('/').next().unwrap_or("source");
    let dir = work.join(SOURCE_DIR);
    let path = dir.join(file_name);
    let record = dir.join(format!(".{file_name}.sha256"));
    let copied = std::fs::read_to_string(&record).ok();
    let same = |sha256: &str| object.sha256.as_deref().is_none_or(|s| s == sha256);
    if let (Some(sha256), Ok(meta)) = (copied.as_deref(), std::fs::metadata(&path)) {
        if meta.len() == object.size && same(sha256.trim()) {
            return Ok(path);
        }
    }
    on_copy(format!(
        "copying the source {name} ({:.1} MB) into the work folder",
        object.size as f64 / 1e6
    ));
    let sha256 =
        reel_publish::copy_to_file(&store, key, object.size, object.sha256.as_deref(), &path)?;
    std::fs::write(&record, &sha256).map_err(|source| PipelineError::Io {
        path: record.clone(),
        source,
    })?;
    Ok(path)
}
