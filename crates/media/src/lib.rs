//! Shared media types for Reel.
//!
//! Everything that crosses a crate boundary in the pipeline lives here: a [`TrackInfo`]
//! describing one elementary stream, the [`EncodedSample`]s that flow through it, the codec
//! configuration records ([`Av1Config`], [`AvcConfig`], [`AudioSpecificConfig`],
//! [`OpusConfig`]) and the RFC 6381 codec strings built from them. Nothing here does I/O.
//!
//! ```
//! use reel_media::{AudioSpecificConfig, CodecConfig};
//! let asc = AudioSpecificConfig::new(2, 48_000, 2).unwrap();
//! assert_eq!(CodecConfig::Aac(asc).codec_string(), "mp4a.40.2");
//! ```

pub mod av1;
pub mod bits;
pub mod h264;
pub mod language;
mod picture;
mod rational;
mod title;
mod track;

pub use av1::Av1Config;
pub use h264::AvcConfig;
pub use picture::Picture;
pub use rational::Rational;
pub use title::{Rendition, Scheme, Thumbnails, TitleRecord};
pub use track::{
    track_title, AudioParams, AudioRole, AudioSpecificConfig, Codec, CodecConfig, ColorInfo,
    ContentLightLevel, EncodedSample, HdrMetadata, MasteringDisplay, OpusConfig, SampleText,
    TextKind, TextTrackInfo, TrackInfo, TrackKind, Tx3gDefaults, VideoParams, VideoRange,
};

/// Errors raised while reading codec configuration records or bitstreams.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    /// The data ended before a field could be read.
    #[error("{what}: truncated (needed {needed} bytes, had {had})")]
    Truncated {
        what: &'static str,
        needed: usize,
        had: usize,
    },
    /// A field holds a value this code does not accept.
    #[error("{what}: {problem}")]
    Invalid { what: &'static str, problem: String },
}

pub type Result<T, E = MediaError> = std::result::Result<T, E>;
