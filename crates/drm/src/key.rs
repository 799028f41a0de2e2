//! Key IDs, content keys, and the set of keys a title is protected with.

use crate::{DrmError, Result};
use std::fmt;
use zeroize::Zeroize;

/// A 16-byte key ID. Key IDs are not secret: they are printed as UUIDs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses 32 hex digits, with or without the dashes of the UUID form.
    ///
    /// ```
    /// use reel_drm::KeyId;
    /// let a = KeyId::parse("10000000-1000-1000-1000-100000000001").unwrap();
    /// let b = KeyId::parse("10000000100010001000100000000001").unwrap();
    /// assert_eq!(a, b);
    /// assert_eq!(a.to_string(), "10000000-1000-1000-1000-100000000001");
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let bytes = parse_hex16(text, true).map_err(|problem| DrmError::InvalidKeyId {
            text: text.chars().take(48).collect(),
            problem,
        })?;
        Ok(Self(bytes))
    }

    /// A new random key ID (version 4 UUID layout).
    pub fn generate() -> Result<Self> {
        let mut b = [0u8; 16];
        random(&mut b)?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Self(b))
    }

    /// 32 lowercase hex digits, no dashes.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.hex();
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 16-byte AES-128 content key. Zeroed when dropped; `Debug` never shows it and there is
/// no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey([u8; 16]);

impl ContentKey {
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses 32 hex digits. The error never repeats the text.
    ///
    /// ```
    /// let k = reel_drm::ContentKey::parse("00112233445566778899aabbccddeeff").unwrap();
    /// assert_eq!(format!("{k:?}"), "ContentKey(<redacted>)");
    /// assert!(reel_drm::ContentKey::parse("0011").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let bytes = parse_hex16(text, false).map_err(|problem| DrmError::InvalidKey { problem })?;
        Ok(Self(bytes))
    }

    /// A new key from the operating system's secure random number generator.
    pub fn generate() -> Result<Self> {
        let mut b = [0u8; 16];
        random(&mut b)?;
        Ok(Self(b))
    }

    /// The key bytes, for the cipher and for key files the user asked for.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Drop for ContentKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(<redacted>)")
    }
}

/// What kind of track a key protects, as real services split keys: audio, and video by
/// resolution class (pixel counts as DASH-IF CPIX and Shaka Packager use them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackClass {
    /// Every track that has no more specific key.
    All,
    Audio,
    /// Video up to 768x576 pixels.
    Sd,
    /// Video up to 1920x1080 pixels.
    Hd,
    /// Video above that.
    Uhd,
}

/// Largest pixel count of the SD and HD classes.
pub const MAX_SD_PIXELS: u64 = 768 * 576;
pub const MAX_HD_PIXELS: u64 = 1920 * 1080;

impl TrackClass {
    /// The classes a title's generated keys cover: one key for audio and one per video
    /// resolution class, as services split them.
    pub const GENERATED: [TrackClass; 4] = [
        TrackClass::Audio,
        TrackClass::Sd,
        TrackClass::Hd,
        TrackClass::Uhd,
    ];

    /// The class of a video track of this size.
    pub fn of_video(width: u32, height: u32) -> Self {
        let pixels = u64::from(width) * u64::from(height);
        if pixels <= MAX_SD_PIXELS {
            TrackClass::Sd
        } else if pixels <= MAX_HD_PIXELS {
            TrackClass::Hd
        } else {
            TrackClass::Uhd
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TrackClass::All => "all",
            TrackClass::Audio => "audio",
            TrackClass::Sd => "sd",
            TrackClass::Hd => "hd",
            TrackClass::Uhd => "uhd",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "all" | "" => TrackClass::All,
            "audio" => TrackClass::Audio,
            "sd" => TrackClass::Sd,
            "hd" => TrackClass::Hd,
            "uhd" | "uhd1" | "uhd2" => TrackClass::Uhd,
            other => {
                return Err(DrmError::InvalidKeySpec {
                    problem: format!(
                        "unknown track class '{other}' (expected all, audio, sd, hd or uhd)"
                    ),
                })
            }
        })
    }
}

/// A content key with its ID and the tracks it is for.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub kid: KeyId,
    pub key: ContentKey,
    pub class: TrackClass,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("class", &self.class)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Parses `KID:KEY` or `CLASS=KID:KEY` (e.g. `hd=<32 hex>:<32 hex>`). KIDs may be in UUID
    /// form. Errors name the problem, never the key.
    ///
    /// ```
    /// use reel_drm::{Key, TrackClass};
    /// let k = Key::parse("audio=00000000000000000000000000000001:00112233445566778899aabbccddeeff").unwrap();
    /// assert_eq!(k.class, TrackClass::Audio);
    /// assert_eq!(k.kid.hex(), "00000000000000000000000000000001");
    /// ```
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        let (class, rest) = match spec.split_once('=') {
            Some((c, r)) => (TrackClass::parse(c.trim())?, r.trim()),
            None => (TrackClass::All, spec),
        };
        let Some((kid, key)) = rest.rsplit_once(':') else {
            return Err(DrmError::InvalidKeySpec {
                problem: "expected KID:KEY (32 hex digits each), optionally after CLASS=".into(),
            });
        };
        if key.trim().is_empty() {
            return Err(DrmError::InvalidKeySpec {
                problem: format!("key ID {} has no key", kid.trim()),
            });
        }
        Ok(Self {
            kid: KeyId::parse(kid.trim())?,
            key: ContentKey::parse(key.trim())?,
            class,
        })
    }

    /// A fresh random key and key ID for `class`.
    pub fn generate(class: TrackClass) -> Result<Self> {
        Ok(Self {
            kid: KeyId::generate()?,
            key: ContentKey::generate()?,
            class,
        })
    }
}

/// The keys of one title, at most one per track class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Builds a key set, refusing duplicate key IDs and two keys for the same class.
    pub fn new(keys: Vec<Key>) -> Result<Self> {
        if keys.is_empty() {
            return Err(DrmError::InvalidKeySpec {
                problem: "no keys given".into(),
            });
        }
        for (i, k) in keys.iter().enumerate() {
            if let Some(other) = keys[..i].iter().find(|o| o.kid == k.kid) {
                let _ = other;
                return Err(DrmError::DuplicateKeyId { kid: k.kid });
            }
            if keys[..i].iter().any(|o| o.class == k.class) {
                return Err(DrmError::InvalidKeySpec {
                    problem: format!("two keys for the track class '{}'", k.class.name()),
                });
            }
        }
        Ok(Self { keys })
    }

    /// Generates one key per class.
    pub fn generate(classes: &[TrackClass]) -> Result<Self> {
        Self::new(
            classes
                .iter()
                .map(|&c| Key::generate(c))
                .collect::<Result<_>>()?,
        )
    }

    /// Reads a key file: one `KID:KEY` or `CLASS=KID:KEY` per line; blank lines and lines
    /// starting with `#` are ignored. Errors name the file and line, never the key.
    pub fn from_key_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| DrmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(Key::parse(line).map_err(|e| DrmError::InFile {
                path: path.to_path_buf(),
                line: n + 1,
                source: Box::new(e),
            })?);
        }
        Self::new(keys).map_err(|e| DrmError::InFile {
            path: path.to_path_buf(),
            line: 0,
            source: Box::new(e),
        })
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The key for a track: the key of its class, else the `all` key. For video the class
    /// comes from the size; audio takes the audio key.
    pub fn for_track(&self, class: TrackClass) -> Option<&Key> {
        self.keys
            .iter()
            .find(|k| k.class == class)
            .or_else(|| self.keys.iter().find(|k| k.class == TrackClass::All))
    }

    /// Like [`for_track`](Self::for_track), with an error naming what is missing.
    pub fn require(&self, class: TrackClass, track: &str) -> Result<&Key> {
        self.for_track(class).ok_or_else(|| DrmError::MissingKey {
            track: track.to_string(),
            class: class.name(),
        })
    }
}

pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| DrmError::Random(e.to_string()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// 32 hex digits (dashes allowed where a UUID has them) to 16 bytes. The problem text never
/// includes the digits.
fn parse_hex16(text: &str, allow_uuid: bool) -> std::result::Result<[u8; 16], String> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: Vec<u8> = if allow_uuid && text.len() == 36 {
        let dashes = [8, 13, 18, 23];
        if dashes.iter().any(|&i| text.as_bytes()[i] != b'-') {
            return Err("not a UUID (dashes misplaced)".into());
        }
        text.bytes().filter(|&b| b != b'-').collect()
    } else {
        text.bytes().collect()
    };
    if digits.len() != 32 {
        return Err(format!(
            "{} characters, expected 32 hex digits (16 bytes)",
            text.len()
        ));
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let v = |c: u8| -> std::result::Result<u8, String> {
            (c as char)
                .to_digit(16)
                .map(|d| d as u8)
                .ok_or_else(|| "contains a character that is not a hex digit".to_string())
        };
        out[i] = (v(pair[0])? << 4) | v(pair[1])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn errors_never_show_the_key() {
        for bad in [
            "00112233445566778899aabbccddeefz",
            "00112233",
            "00112233445566778899aabbccddeeff00",
        ] {
            let e = ContentKey::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("00112233"), "{e}");
        }
        let e = Key::parse(&format!("nonsense:{KEY}"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains(KEY), "{e}");
        let e = Key::parse(&format!("xx=00000000000000000000000000000001:{KEY}"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains(KEY) && e.contains("xx"), "{e}");
        let k = Key::parse(&format!("00000000000000000000000000000001:{KEY}")).unwrap();
        assert!(!format!("{k:?}").contains("0011"));
    }

    #[test]
    fn key_without_kid_or_key() {
        assert!(Key::parse(KEY).is_err());
        let e = Key::parse("00000000000000000000000000000001:").unwrap_err();
        assert!(e.to_string().contains("has no key"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let a = Key::parse(&format!("audio=00000000000000000000000000000001:{KEY}")).unwrap();
        let b = Key::parse(&format!("hd=00000000000000000000000000000001:{KEY}")).unwrap();
        assert!(matches!(
            KeySet::new(vec![a.clone(), b]),
            Err(DrmError::DuplicateKeyId { .. })
        ));
        let c = Key::parse(&format!("audio=00000000000000000000000000000002:{KEY}")).unwrap();
        assert!(KeySet::new(vec![a, c]).is_err());
    }

    #[test]
    fn classes_pick_keys() {
        let set = KeySet::generate(&[TrackClass::Audio, TrackClass::Sd, TrackClass::All]).unwrap();
        assert_eq!(
            set.for_track(TrackClass::Audio).unwrap().class,
            TrackClass::Audio
        );
        assert_eq!(
            set.for_track(TrackClass::Hd).unwrap().class,
            TrackClass::All
        );
        assert_eq!(TrackClass::of_video(640, 360), TrackClass::Sd);
        assert_eq!(TrackClass::of_video(1280, 720), TrackClass::Hd);
        assert_eq!(TrackClass::of_video(3840, 2160), TrackClass::Uhd);
        let only_sd = KeySet::generate(&[TrackClass::Sd]).unwrap();
        assert!(only_sd.require(TrackClass::Hd, "720p").is_err());
        // Generated keys differ.
        let k = KeySet::generate(&[TrackClass::All, TrackClass::Audio]).unwrap();
        assert_ne!(k.keys()[0].key, k.keys()[1].key);
        assert_ne!(k.keys()[0].kid, k.keys()[1].kid);
    }

    #[test]
    fn key_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.txt");
        std::fs::write(
            &p,
            format!("# title keys\n\naudio=00000000000000000000000000000001:{KEY}\nhd=10000000-1000-1000-1000-100000000001:{KEY}\n"),
        )
        .unwrap();
        let set = KeySet::from_key_file(&p).unwrap();
        assert_eq!(set.keys().len(), 2);
        std::fs::write(
            &p,
            format!("audio=00000000000000000000000000000001:{KEY}\nbad line\n"),
        )
        .unwrap();
        let e = KeySet::from_key_file(&p).unwrap_err().to_string();
        assert!(e.contains("keys.txt") && e.contains("line 2"), "{e}");
        assert!(!e.contains(KEY));
    }
}
