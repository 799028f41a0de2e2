//! Common Encryption in the packager: per-track key choice and encryptor, the `sinf`/`tenc`
//! and `pssh` boxes of the init segment, and `senc`/`saiz`/`saio` in each fragment.

use crate::boxes::{write_box, write_full_box, Put};
use crate::{PackagerError, Result};
use reel_drm::{
    DrmSystem, Key, KeySet, Pssh, SampleEncryption, Scheme, TrackClass, TrackEncryption,
    TrackEncryptor,
};
use reel_media::{Codec, TrackInfo, TrackKind};

/// How a title is protected.
#[derive(Debug, Clone)]
pub struct Protection {
    pub scheme: Scheme,
    pub keys: KeySet,
    pub signalling: Signalling,
    /// Per-sample IV size for `cenc`: 8 (default) or 16.
    pub iv_size: u8,
}

/// How protection is signalled to players: the DRM systems and where they get keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signalling {
    /// DRM systems to signal; ClearKey (the W3C common PSSH) when empty.
    pub systems: Vec<DrmSystem>,
    /// ClearKey licence server (DASH `dashif:laurl`).
    pub clearkey_license_url: Option<String>,
    /// PlayReady licence server (`LA_URL` in the WRM header).
    pub playready_license_url: Option<String>,
    /// HLS `identity` key URI for ClearKey, `{kid}` replaced by the key ID (hex). Without it no
    /// identity key tag is written.
    pub hls_key_uri: Option<String>,
    /// FairPlay key URI, `{kid}` replaced; default `skd://{kid}`.
    pub fairplay_key_uri: Option<String>,
    /// Content ID for the Widevine PSSH.
    pub widevine_content_id: Option<String>,
}

/// Where a title's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Keys given directly (e.g. `--key` on the command line).
    Given(KeySet),
    /// A file of `[CLASS=]KID:KEY` lines.
    KeyFile(std::path::PathBuf),
    /// A DASH-IF CPIX document.
    Cpix(std::path::PathBuf),
    /// Fresh keys for every class of [`TrackClass::GENERATED`], written to this CPIX file
    /// (0600) first. With `keep_existing`, a file that exists already is read back instead, so
    /// that a resumed title keeps its keys.
    Generate {
        cpix: std::path::PathBuf,
        keep_existing: bool,
    },
}

impl KeySource {
    /// The keys; generated ones are written to their file before they are used.
    pub fn keys(&self, content_id: &str) -> std::result::Result<KeySet, reel_drm::DrmError> {
        match self {
            KeySource::Given(keys) => Ok(keys.clone()),
            KeySource::KeyFile(path) => KeySet::from_key_file(path),
            KeySource::Cpix(path) => reel_drm::read_cpix(path),
            KeySource::Generate {
                cpix,
                keep_existing,
            } => {
                if *keep_existing && cpix.exists() {
                    return reel_drm::read_cpix(cpix);
                }
                let keys = KeySet::generate(&TrackClass::GENERATED)?;
                if let Some(dir) = cpix.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| reel_drm::DrmError::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                reel_drm::write_cpix(cpix, &keys, content_id)?;
                Ok(keys)
            }
        }
    }
}

/// What a job file or the command line asks of encryption, parsed: the one way from those
/// settings to a [`Protection`], shared by `reel run` and `reel package`.
#[derive(Debug, Clone)]
pub struct ProtectionSettings {
    pub scheme: Scheme,
    pub keys: KeySource,
    pub signalling: Signalling,
    /// The content ID written into a generated CPIX document.
    pub content_id: String,
    /// Per-sample IV size for `cenc` (8 or 16); `cbcs` has a constant IV.
    pub iv_size: Option<u8>,
}

impl ProtectionSettings {
    pub fn new(scheme: Scheme, keys: KeySource, content_id: &str) -> Self {
        ProtectionSettings {
            scheme,
            keys,
            signalling: Signalling::default(),
            content_id: content_id.to_string(),
            iv_size: None,
        }
    }

    /// The protection: settings checked, keys read or generated (and written). No message
    /// contains a key.
    pub fn build(&self) -> std::result::Result<Protection, reel_drm::DrmError> {
        if self.iv_size.is_some() && self.scheme == Scheme::Cbcs {
            return Err(reel_drm::DrmError::InvalidKeySpec {
                problem: "an IV size is for cenc; cbcs uses a constant IV".into(),
            });
        }
        let mut p = Protection::new(self.scheme, self.keys.keys(&self.content_id)?);
        p.signalling = self.signalling.clone();
        if let Some(n) = self.iv_size {
            p.iv_size = n;
        }
        Ok(p)
    }
}

impl Protection {
    pub fn new(scheme: Scheme, keys: KeySet) -> Self {
        Self {
            scheme,
            keys,
            signalling: Signalling::default(),
            iv_size: 8,
        }
    }

    pub(crate) fn systems(&self) -> Vec<DrmSystem> {
        if self.signalling.systems.is_empty() {
            vec![DrmSystem::ClearKey]
        } else {
            self.signalling.systems.clone()
        }
    }

    /// Refuses combinations no client can play, before anything is written.
    pub(crate) fn check(&self) -> Result<()> {
        for s in self.systems() {
            s.check_scheme(self.scheme)
                .map_err(|e| PackagerError::Protection {
                    track: None,
                    problem: e.to_string(),
                })?;
        }
        Ok(())
    }
}

/// The signalling of one protected track, for its init segment and the manifests.
#[derive(Debug, Clone)]
pub struct TrackProtection {
    pub info: TrackEncryption,
    pub class: TrackClass,
    /// One `pssh` per DRM system that has one (FairPlay has none).
    pub pssh: Vec<(DrmSystem, Pssh)>,
    /// The systems signalled (ClearKey when the title named none).
    pub systems: Vec<DrmSystem>,
    pub signalling: Signalling,
}

impl TrackProtection {
    pub fn kid(&self) -> reel_drm::KeyId {
        self.info.kid
    }

    /// The PlayReady Object (the PSSH data), for `mspr:pro` and HLS.
    pub fn playready_object(&self) -> Option<&[u8]> {
        self.pssh
            .iter()
            .find(|p| p.0 == DrmSystem::PlayReady)
            .map(|p| p.1.data.as_slice())
    }
}

/// Picks the track's key and builds its encryptor and signalling.
pub(crate) fn protect_track(
    p: &Protection,
    track: &TrackInfo,
) -> Result<(TrackEncryptor, TrackProtection)> {
    let class = match (track.kind(), track.video) {
        (TrackKind::Audio, _) => TrackClass::Audio,
        (TrackKind::Video, Some(v)) => TrackClass::of_video(v.width, v.height),
        (TrackKind::Video, None) => TrackClass::Hd,
        (TrackKind::Text, _) => {
            return Err(PackagerError::Protection {
                track: Some(track.name.clone()),
                problem: "text tracks are never encrypted".into(),
            })
        }
    };
    let fail = |problem: String| PackagerError::Protection {
        track: Some(track.name.clone()),
        problem,
    };
    let systems = p.systems();
    if systems.contains(&DrmSystem::FairPlay) && track.config.codec() == Codec::Opus {
        return Err(fail(
            "FairPlay does not support Opus audio; use AAC or leave FairPlay out".into(),
        ));
    }
    let key: &Key = p
        .keys
        .require(class, &track.name)
        .map_err(|e| fail(e.to_string()))?;
    let mut enc = TrackEncryptor::new(p.scheme, key, &track.config, track.kind())
        .map_err(|e| fail(e.to_string()))?;
    if p.scheme == Scheme::Cenc {
        enc.set_iv_size(p.iv_size)
            .map_err(|e| fail(e.to_string()))?;
    }
    // The common and Widevine PSSH list every key ID of the key set, in byte order, as Shaka
    // Packager's do: a player builds one licence request from the first init segment it
    // meets, and must get the audio key with the video one. hls.js cannot tell ClearKey
    // sessions apart by key ID, and with one key ID per PSSH it never asked for the audio
    // key (issue 17). A licence server still issues only what the viewer may have.
    let mut key_ids: Vec<reel_drm::KeyId> = p.keys.keys().iter().map(|k| k.kid).collect();
    key_ids.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut pssh = Vec::new();
    for s in &systems {
        match s {
            DrmSystem::ClearKey => pssh.push((*s, Pssh::common(&key_ids))),
            DrmSystem::Widevine => pssh.push((
                *s,
                Pssh::widevine(
                    &key_ids,
                    p.signalling
                        .widevine_content_id
                        .as_deref()
                        .map(str::as_bytes),
                    p.scheme,
                ),
            )),
            DrmSystem::PlayReady => pssh.push((
                *s,
                Pssh::playready(key, p.scheme, p.signalling.playready_license_url.as_deref()),
            )),
            DrmSystem::FairPlay => {}
        }
    }
    let info = enc.info().clone();
    Ok((
        enc,
        TrackProtection {
            info,
            class,
            pssh,
            systems,
            signalling: p.signalling.clone(),
        },
    ))
}

/// `sinf` (ISO/IEC 23001-7 8.12 / 14496-12 8.12): `frma` with the clear sample entry type,
/// `schm` with the scheme, `schi` with `tenc`.
pub(crate) fn sinf(o: &mut Vec<u8>, original: &[u8; 4], t: &TrackEncryption) -> Result<()> {
    write_box(o, b"sinf", |o| {
        write_box(o, b"frma", |o| {
            o.extend_from_slice(original);
            Ok(())
        })?;
        write_full_box(o, b"schm", 0, 0, |o| {
            o.extend_from_slice(t.scheme.fourcc());
            o.u32(0x0001_0000);
            Ok(())
        })?;
        write_box(o, b"schi", |o| tenc(o, t))
    })
}

/// `tenc` (ISO/IEC 23001-7 8.2): version 1 carries the pattern (`cbcs`).
fn tenc(o: &mut Vec<u8>, t: &TrackEncryption) -> Result<()> {
    let version = u8::from(t.scheme == Scheme::Cbcs);
    write_full_box(o, b"tenc", version, 0, |o| {
        o.u8(0);
        if version == 0 {
            o.u8(0);
        } else {
            o.u8((t.crypt_byte_block << 4) | (t.skip_byte_block & 0x0f));
        }
        o.u8(1); // default_isProtected
        o.u8(t.per_sample_iv_size);
        o.extend_from_slice(t.kid.as_bytes());
        if t.per_sample_iv_size == 0 {
            let iv = t.constant_iv.unwrap_or_default();
            o.u8(16);
            o.extend_from_slice(&iv);
        }
        Ok(())
    })
}

/// `saiz`, `saio` and `senc` for the samples of one fragment; only an empty `senc` when no
/// sample has auxiliary information (`cbcs` full-sample audio: constant IV, no subsamples). Returns the
/// offset in `o` of `saio`'s offset field, to be made relative to the `moof` start, and the
/// offset in `o` where the first sample's information starts.
pub(crate) fn sample_aux_boxes(
    o: &mut Vec<u8>,
    aux: &[SampleEncryption],
) -> Result<Option<(usize, usize)>> {
    if aux.iter().all(|a| a.aux_size() == 0) {
        // Nothing per sample: an empty `senc` (as Shaka Packager writes, whose reader needs
        // it), and no `saiz`/`saio`.
        write_full_box(o, b"senc", 0, 0, |o| {
            o.u32(aux.len() as u32);
            Ok(())
        })?;
        return Ok(None);
    }
    let sizes: Vec<usize> = aux.iter().map(SampleEncryption::aux_size).collect();
    let too_big = |n: usize| PackagerError::BoxTooLarge {
        fourcc: "saiz".into(),
        size: n as u64,
    };
    let uniform = sizes.iter().all(|&s| s == sizes[0]);
    write_full_box(o, b"saiz", 0, 0, |o| {
        if uniform {
            o.u8(u8::try_from(sizes[0]).map_err(|_| too_big(sizes[0]))?);
            o.u32(sizes.len() as u32);
        } else {
            o.u8(0);
            o.u32(sizes.len() as u32);
            for &s in &sizes {
                o.u8(u8::try_from(s).map_err(|_| too_big(s))?);
            }
        }
        Ok(())
    })?;
    let mut offset_at = 0;
    write_full_box(o, b"saio", 0, 0, |o| {
        o.u32(1);
        offset_at = o.len();
        o.u32(0);
        Ok(())
    })?;
    let subsamples = aux.iter().any(|a| !a.subsamples.is_empty());
    let mut data_at = 0;
    write_full_box(o, b"senc", 0, if subsamples { 0x2 } else { 0 }, |o| {
        o.u32(aux.len() as u32);
        data_at = o.len();
        for a in aux {
            o.extend_from_slice(&a.iv);
            if subsamples {
                o.u16(a.subsamples.len() as u16);
                for s in &a.subsamples {
                    o.u16(s.clear);
                    o.u32(s.protected);
                }
            }
        }
        Ok(())
    })?;
    Ok(Some((offset_at, data_at)))
}
