//! The job: a declarative spec ([`Job`]) taken from mezzanine to a published, protected
//! title by [`run`] — probe, per-title analysis (or a fixed ladder), one decode feeding every
//! rung's encoder, CMAF packaging with Common Encryption and DASH/HLS manifests, publishing to
//! a local folder or S3 in an order that never exposes a manifest early — resumable from a
//! work folder: finished rungs are never encoded again, published objects never sent again.
//!
//! ```no_run
//! use reel_pipeline::{run, Job, RunOptions};
//! let job = Job::from_file("jobs/demo.toml".as_ref()).unwrap();
//! let summary = run(&job, "jobs".as_ref(), &RunOptions::default(), &mut |event| {
//!     eprintln!("{event:?}");
//! })
//! .unwrap();
//! println!("DASH manifest: {}", summary.dash_url);
//! ```

mod audio;
pub use audio::AudioFile;
mod job;
mod measure;
mod package;
mod poster;
mod record;
mod run;
mod source;
mod state;
mod subtitles;
mod tagged_file;
mod thumbnails;

pub use job::{
    AnalysisSpec, AudioTrackSpec, DestinationSpec, EncryptionSpec, Job, PackagingSpec, QualitySpec,
    S3Endpoint, SourceLocation, ThumbnailSpec, TitleSpec,
};
pub use package::package_files;
pub use poster::{poster_frame, poster_from_picture, poster_jpeg, POSTER_FILE};
pub use reel_media::{Rendition, TitleRecord};
pub use run::{dry_run, folder_uploads, run, DryRun, Phase, PipelineEvent, RunOptions, RunSummary};
pub use state::{EncodeRecord, State};
pub use subtitles::{DashText, SubtitleInput};
pub use thumbnails::ThumbnailSprites;

use std::path::PathBuf;

/// Errors of a pipeline run; each names the file or step it is about.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("poster frame: {0}")]
    Poster(String),
    #[error("{path}: bad job: {detail}")]
    Job { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Encode(#[from] reel_encoder::EncodeError),
    #[error(transparent)]
    Package(#[from] reel_packager::PackagerError),
    #[error(transparent)]
    Drm(#[from] reel_drm::DrmError),
    #[error(transparent)]
    Ladder(#[from] reel_ladder::LadderError),
    #[error(transparent)]
    Publish(#[from] reel_publish::PublishError),
    #[error(transparent)]
    Units(reel_units::UnitError),
    #[error("{path}: {detail}")]
    State { path: PathBuf, detail: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("stopped on request; the next run resumes where this one stopped")]
    Cancelled,
}

impl From<reel_units::UnitError> for PipelineError {
    fn from(e: reel_units::UnitError) -> Self {
        match e {
            reel_units::UnitError::Cancelled => PipelineError::Cancelled,
            e => PipelineError::Units(e),
        }
    }
}

pub(crate) fn io_error(
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}
