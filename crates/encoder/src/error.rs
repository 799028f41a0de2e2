use std::path::PathBuf;

/// Errors from probing, decoding, encoding and demuxing. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{path}: no such file")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a media file GStreamer can read ({detail})")]
    NotMedia { path: PathBuf, detail: String },
    #[error("{path}: has no video stream")]
    NoVideo { path: PathBuf },
    #[error("{path}: unsupported: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path}: decoding failed: {detail}")]
    Decode { path: PathBuf, detail: String },
    #[error("{path}: {encoder} failed: {detail}")]
    Encoder {
        path: PathBuf,
        encoder: &'static str,
        detail: String,
    },
    #[error(
        "GStreamer element '{0}' is missing; install the GStreamer plugin packages (see README)"
    )]
    MissingElement(String),
    #[error("{path}: {stage} stalled: no frame for {seconds} s and no end of stream")]
    Stalled {
        path: PathBuf,
        /// What was being done: `decoding`, `encoding`, `demuxing`, ...
        stage: &'static str,
        seconds: u64,
    },
    #[error("invalid ladder: {0}")]
    InvalidLadder(String),
    #[error("GStreamer: {0}")]
    Gst(String),
}

impl EncodeError {
    /// `NotFound` for a missing file, `Io` for any other failure to read it.
    pub(crate) fn reading(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            EncodeError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            EncodeError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

impl From<gstreamer::glib::BoolError> for EncodeError {
    fn from(e: gstreamer::glib::BoolError) -> Self {
        EncodeError::Gst(e.to_string())
    }
}

impl From<gstreamer::StateChangeError> for EncodeError {
    fn from(e: gstreamer::StateChangeError) -> Self {
        EncodeError::Gst(e.to_string())
    }
}
