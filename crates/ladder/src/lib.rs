//! Per-title ladders: sampling a title, trial encodes (H.264 with x264, AV1 with rav1e) scored
//! with VMAF, PSNR and SSIM, the rate-quality convex hull, rung selection on it under a user's
//! constraints and device limits, and the Bjontegaard delta rate to compare ladders. The
//! analysis ([`analyze`]) needs the `vmaf` feature (libvmaf, GPL-3.0).
//!
//! ```
//! use reel_ladder::{convex_hull, select_rungs, Constraints, TrialPoint};
//! let p = |h: u32, kbps: f64, score: f64| TrialPoint { width: h * 16 / 9, height: h, setting: 0.0, bitrate: kbps, score, interpolated: false };
//! let trials = vec![
//!     p(360, 400.0, 70.0), p(360, 800.0, 80.0), p(360, 1600.0, 84.0),
//!     p(720, 800.0, 74.0), p(720, 1600.0, 88.0), p(720, 3200.0, 95.0),
//! ];
//! let hull = convex_hull(&trials);
//! let rungs = select_rungs(&hull, &Constraints::default()).unwrap();
//! assert!(rungs.windows(2).all(|w| w[0].bitrate > w[1].bitrate));
//! assert!(rungs.iter().all(|r| hull.contains(r)));
//! ```

#[cfg(feature = "vmaf")]
mod analyze;
mod bdrate;
pub mod device;
mod hull;
#[cfg(feature = "vmaf")]
mod measure;
pub mod metrics;
#[cfg(feature = "vmaf")]
mod plot;
pub mod sample;
pub mod search;
#[cfg(feature = "vmaf")]
mod vmaf;

#[cfg(feature = "vmaf")]
pub use analyze::{
    analyze, display_size, fixed_ladder, Analysis, AnalyzeEvent, AnalyzeOptions, ChosenRung,
    Phases, RungRateControl, SkippedTrial, SourceSummary, Trial, CANDIDATE_HEIGHTS,
};
pub use bdrate::{bd_rate, bd_rate_piecewise};
pub use hull::{convex_hull, interpolate_curves, select_rungs, Constraints, TrialPoint};
#[cfg(feature = "vmaf")]
pub use measure::{measure_renditions, PredictionError, RenditionFile, RenditionQuality};
pub use metrics::{psnr, ssim, Pooled};
#[cfg(feature = "vmaf")]
pub use plot::plot;
#[cfg(feature = "vmaf")]
pub use vmaf::{ReferenceMotion, Vmaf};

/// Errors of ladder analysis.
#[derive(Debug, thiserror::Error)]
pub enum LadderError {
    #[error("no trial point to build a ladder from")]
    NoPoints,
    #[error("no point on the hull meets the constraints: {0}")]
    Unsatisfiable(String),
    #[error("quality metric: {0}")]
    Metric(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("plot: {0}")]
    Plot(String),
    #[error(transparent)]
    Encode(#[from] reel_encoder::EncodeError),
}

pub type Result<T, E = LadderError> = std::result::Result<T, E>;
