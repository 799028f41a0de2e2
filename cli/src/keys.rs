//! Encryption options of `reel package` and `reel keys generate`.

use anyhow::{bail, Context, Result};
use clap::Args;
use reel_drm::{write_cpix, DrmSystem, Key, KeySet, Scheme, TrackClass};
use reel_packager::{KeySource, Protection, ProtectionSettings, Signalling};
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
pub struct EncryptArgs {
    /// Encrypt every track with Common Encryption: `cenc` (AES-CTR) or `cbcs` (AES-CBC 1:9).
    #[arg(long, value_name = "SCHEME")]
    pub encrypt: Option<String>,
    /// A key as KID:KEY (32 hex digits each; KID may be a UUID), optionally for one track
    /// class: audio=, sd=, hd=, uhd= or all=. Repeat for several keys.
    #[arg(long = "key", value_name = "[CLASS=]KID:KEY")]
    pub keys: Vec<String>,
    /// A file with one [CLASS=]KID:KEY per line (# starts a comment).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// A DASH-IF CPIX document with the keys (clear PlainValue keys, usage rules per class).
    #[arg(long, value_name = "FILE")]
    pub cpix: Option<PathBuf>,
    /// Generate fresh keys (audio, SD, HD, UHD) and write them to this CPIX file first.
    #[arg(long, value_name = "FILE")]
    pub generate_keys: Option<PathBuf>,
    /// DRM systems to signal: widevine, playready, fairplay, clearkey (default clearkey).
    #[arg(long, value_name = "LIST")]
    pub drm: Option<String>,
    /// ClearKey licence server URL, written as dashif:laurl in the MPD.
    #[arg(long, value_name = "URL")]
    pub license_url: Option<String>,
    /// PlayReady licence server URL (LA_URL in the PlayReady header).
    #[arg(long, value_name = "URL")]
    pub playready_license_url: Option<String>,
    /// HLS key URI for ClearKey `identity` key tags; {kid} is replaced by the key ID.
    #[arg(long, value_name = "URI")]
    pub hls_key_uri: Option<String>,
    /// FairPlay key URI; {kid} is replaced by the key ID (default skd://{kid}).
    #[arg(long, value_name = "URI")]
    pub fairplay_key_uri: Option<String>,
    /// Content ID in the Widevine PSSH.
    #[arg(long, value_name = "ID")]
    pub content_id: Option<String>,
    /// Per-sample IV size for cenc: 8 or 16 bytes (cbcs uses a constant IV).
    #[arg(long, value_name = "BYTES")]
    pub iv_size: Option<u8>,
}

impl EncryptArgs {
    /// The protection asked for, or `None` when nothing asks for encryption. Every problem
    /// is found here, before any output is written; no message contains a key.
    pub fn protection(&self, content_id: &str) -> Result<Option<Protection>> {
        let key_given = !self.keys.is_empty()
            || self.key_file.is_some()
            || self.cpix.is_some()
            || self.generate_keys.is_some();
        let Some(scheme) = &self.encrypt else {
            if key_given || self.drm.is_some() {
                bail!("keys or DRM systems given without --encrypt cenc|cbcs");
            }
            return Ok(None);
        };
        let scheme = Scheme::parse(scheme)?;
        let sources = usize::from(!self.keys.is_empty())
            + usize::from(self.key_file.is_some())
            + usize::from(self.cpix.is_some())
            + usize::from(self.generate_keys.is_some());
        if sources == 0 {
            bail!("--encrypt needs keys: --key, --key-file, --cpix or --generate-keys FILE");
        }
        if sources > 1 {
            bail!("give keys one way: --key, --key-file, --cpix or --generate-keys");
        }
        let keys = if !self.keys.is_empty() {
            let parsed = self
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| Key::parse(k).with_context(|| format!("--key number {}", i + 1)))
                .collect::<Result<Vec<_>>>()?;
            KeySource::Given(KeySet::new(parsed)?)
        } else if let Some(f) = &self.key_file {
            KeySource::KeyFile(f.clone())
        } else if let Some(f) = &self.cpix {
            KeySource::Cpix(f.clone())
        } else {
            KeySource::Generate {
                cpix: self.generate_keys.clone().expect("counted"),
                keep_existing: false,
            }
        };
        let mut settings = ProtectionSettings::new(scheme, keys, content_id);
        settings.signalling = Signalling {
            systems: match &self.drm {
                Some(list) => DrmSystem::parse_list(list)?,
                None => Vec::new(),
            },
            clearkey_license_url: self.license_url.clone(),
            playready_license_url: self.playready_license_url.clone(),
            hls_key_uri: self.hls_key_uri.clone(),
            fairplay_key_uri: self.fairplay_key_uri.clone(),
            widevine_content_id: self.content_id.clone(),
        };
        settings.iv_size = self.iv_size;
        let p = settings.build()?;
        Ok(Some(p))
    }
}

/// `reel keys generate`: fresh keys per class into a CPIX file; prints key IDs only.
pub fn generate(out: &std::path::Path, classes: Option<&str>, content_id: &str) -> Result<String> {
    let classes: Vec<TrackClass> = match classes {
        Some(list) => list
            .split(',')
            .map(|c| TrackClass::parse(c.trim()))
            .collect::<Result<_, _>>()?,
        None => TrackClass::GENERATED.to_vec(),
    };
    let keys = KeySet::generate(&classes)?;
    write_cpix(out, &keys, content_id)?;
    let mut text = format!("wrote {} keys to {}\n", keys.keys().len(), out.display());
    for k in keys.keys() {
        text.push_str(&format!("  {:<6} {}\n", k.class.name(), k.kid));
    }
    Ok(text)
}
