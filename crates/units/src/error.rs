//! What can go wrong with a title's units.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error(transparent)]
    Encode(#[from] reel_encoder::EncodeError),
    #[error(transparent)]
    Package(#[from] reel_packager::PackagerError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A unit failed on its last attempt.
    #[error("{source_path}: {unit} failed after {attempts} attempts: {detail}")]
    Failed {
        source_path: PathBuf,
        /// The unit, as people name it: `chunk 3 (frames 2250..3000, 90.0-120.0 s)`.
        unit: String,
        attempts: u32,
        detail: String,
    },
    /// Unit outputs that do not join: a stitching rule was broken.
    #[error("{path}: {detail}")]
    Stitch { path: PathBuf, detail: String },
    /// Units run elsewhere, and reaching them failed: `service` names what (the NATS server,
    /// the object store) and where.
    #[error("{service}: {detail}")]
    Remote { service: String, detail: String },
    #[error("stopped")]
    Cancelled,
}

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> UnitError + '_ {
    move |source| UnitError::Io {
        path: path.to_path_buf(),
        source,
    }
}
