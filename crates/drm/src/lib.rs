//! Keys and Common Encryption for Reel.
//!
//! - [`KeyId`], [`ContentKey`] (zeroed on drop, never printed), [`Key`] with its
//!   [`TrackClass`] (audio, SD, HD, UHD or all), and [`KeySet`]: keys from the command line,
//!   a key file, a secure random generator, or a DASH-IF CPIX document ([`read_cpix`],
//!   [`write_cpix`]).
//! - [`TrackEncryptor`]: `cenc` (AES-128 CTR) and `cbcs` (AES-128 CBC, 1:9 pattern for
//!   video) sample encryption per ISO/IEC 23001-7, with subsample maps that keep H.264 slice
//!   headers and AV1 headers clear.
//! - [`Pssh`]: W3C common, Widevine and PlayReady `pssh` payloads; [`DrmSystem`] for the
//!   manifests' signalling.
//!
//! ```
//! use reel_drm::{KeySet, Pssh, Scheme, TrackClass, TrackEncryptor};
//! use reel_media::{AudioSpecificConfig, CodecConfig, TrackKind};
//! let keys = KeySet::generate(&[TrackClass::Audio, TrackClass::All]).unwrap();
//! let key = keys.for_track(TrackClass::Audio).unwrap();
//! let config = CodecConfig::Aac(AudioSpecificConfig::new(2, 48_000, 2).unwrap());
//! let mut enc = TrackEncryptor::new(Scheme::Cbcs, key, &config, TrackKind::Audio).unwrap();
//! let mut sample = vec![0u8; 300];
//! let aux = enc.encrypt(&mut sample).unwrap();
//! assert!(aux.iv.is_empty()); // cbcs: constant IV in `tenc`
//! let pssh = Pssh::common(&[key.kid]).to_box();
//! assert_eq!(&pssh[4..8], b"pssh");
//! ```

mod cpix;
mod crypt;
mod key;
mod pssh;
mod subsample;

pub use cpix::{cpix_document, parse_cpix_document, read_cpix, write_cpix};
pub use crypt::{
    decrypt_sample, SampleEncryption, Scheme, Subsample, TrackEncryption, TrackEncryptor,
};
pub use key::{ContentKey, Key, KeyId, KeySet, TrackClass, MAX_HD_PIXELS, MAX_SD_PIXELS};
pub use pssh::{
    playready_header, DrmSystem, Pssh, COMMON_SYSTEM_ID, FAIRPLAY_SYSTEM_ID, PLAYREADY_SYSTEM_ID,
    WIDEVINE_SYSTEM_ID,
};

use std::path::PathBuf;

/// Errors of key handling and encryption. None of them ever carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum DrmError {
    #[error("invalid key ID '{text}': {problem}")]
    InvalidKeyId { text: String, problem: String },
    #[error("invalid content key: {problem}")]
    InvalidKey { problem: String },
    #[error("invalid key specification: {problem}")]
    InvalidKeySpec { problem: String },
    #[error("key ID {kid} is given twice")]
    DuplicateKeyId { kid: KeyId },
    #[error("no key for track {track} (class {class}) and no key for all tracks")]
    MissingKey { track: String, class: &'static str },
    #[error("{path}: {problem}")]
    Cpix { path: PathBuf, problem: String },
    #[error("{}{}: {source}", path.display(), if *line > 0 { format!(", line {line}") } else { String::new() })]
    InFile {
        path: PathBuf,
        line: usize,
        source: Box<DrmError>,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encrypt: {problem}")]
    Unsupported { problem: String },
    #[error("cannot encrypt sample: {problem}")]
    Sample { problem: String },
    #[error("cannot encrypt sample: {0}")]
    Bitstream(#[from] reel_media::MediaError),
    #[error("secure random number generator failed: {0}")]
    Random(String),
}

pub type Result<T, E = DrmError> = std::result::Result<T, E>;
