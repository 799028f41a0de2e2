//! ISO-BMFF box writing and CMAF fragmented MP4 output.
//!
//! Each box is a small function that writes its own header and size through [`boxes::write_box`].
//! [`init_segment`] writes `ftyp` + `moov` for one track; [`media_fragment`] writes one
//! `moof` + `mdat` (optionally preceded by `styp`); [`FragmentedMp4File`] streams a whole track
//! into one fragmented MP4 file, written under a temporary name and renamed when complete.
//!
//! ```
//! use reel_media::{AudioParams, AudioSpecificConfig, CodecConfig, EncodedSample, TrackInfo};
//! let track = TrackInfo {
//!     id: 1,
//!     config: CodecConfig::Aac(AudioSpecificConfig::new(2, 48_000, 2).unwrap()),
//!     timescale: 48_000,
//!     video: None,
//!     audio: Some(AudioParams { sample_rate: 48_000, channels: 2, role: Default::default() }),
//!     language: "eng".into(),
//!     name: "audio".into(),
//!     title: None,
//! };
//! let init = reel_packager::init_segment(&track, &Default::default()).unwrap();
//! assert_eq!(&init[4..8], b"ftyp");
//! let sample = EncodedSample { data: vec![0; 10], dts: 0, pts: 0, duration: 1024, sync: true };
//! let frag = reel_packager::media_fragment(&track, 1, &[sample], 0, false).unwrap();
//! assert_eq!(&frag[4..8], b"moof");
//! ```

pub mod boxes;
mod file;
mod fragment;
mod init;
mod manifest;
mod package;
mod protect;
mod text;
mod thumbnails;
mod writer;

pub use file::{FragmentPolicy, FragmentedMp4File};
pub use fragment::media_fragment;
pub use init::{init_segment, InitOptions};
pub use manifest::{dash_mpd, hls_playlists, write_manifests, DASH_MANIFEST, HLS_MASTER};
pub use package::{
    check_segment_duration, write_atomically, Addressing, PackageOptions, PackagedTrack, Packager,
    SegmentRecord, DEFAULT_SEGMENT_SECONDS,
};
pub use protect::{KeySource, Protection, ProtectionSettings, Signalling, TrackProtection};
pub use text::{write_text_track, TextSegment};
pub use thumbnails::{Sprite, ThumbnailTrack, THUMBNAILS_DIR, THUMBNAILS_PLAYLIST, THUMBNAILS_VTT};
pub use writer::WrittenSegment;

use std::path::PathBuf;

/// Errors from box writing and file output.
#[derive(Debug, thiserror::Error)]
pub enum PackagerError {
    #[error("box '{fourcc}' is {size} bytes, larger than the format allows")]
    BoxTooLarge { fourcc: String, size: u64 },
    #[error("track {track}: {problem}")]
    InvalidTrack { track: u32, problem: String },
    #[error("track {track}, sample {index} (dts {dts}): {problem}")]
    InvalidSample {
        track: u32,
        index: u64,
        dts: i64,
        problem: String,
    },
    #[error("{}{problem}", track.as_ref().map(|t| format!("track {t}: ")).unwrap_or_default())]
    Protection {
        track: Option<String>,
        problem: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = PackagerError> = std::result::Result<T, E>;

/// A track name made safe as a file or folder name: ASCII letters, digits, `-` and `_` kept,
/// anything else replaced by `_`.
///
/// ```
/// assert_eq!(reel_packager::safe_file_name("720p AV1/x"), "720p_AV1_x");
/// ```
pub fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
