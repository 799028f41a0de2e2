//! The job spec: what to make of one title and where to publish it (TOML, or JSON).

use crate::PipelineError;
use reel_drm::{DrmSystem, Scheme};
use reel_encoder::LadderChoice;
use reel_media::Codec;
use reel_packager::{KeySource, ProtectionSettings, Signalling};
use reel_publish::{Destination, S3Options};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One title's job. Relative paths are relative to the job file's folder.
///
/// ```
/// let job = reel_pipeline::Job::from_toml(r#"
///     ladder = "fixed"
///     [title]
///     id = "demo"
///     source = "mezzanine.mp4"
///     [destination]
///     url = "file://out/demo"
/// "#).unwrap();
/// assert_eq!(job.title.id, "demo");
/// assert_eq!(job.packaging.segment_duration, 4.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// `per-title` (analysed; needs the `vmaf` feature), `fixed` (Apple's authoring-spec
    /// H.264 ladder trimmed to the source), a built-in ladder (`h264`, `av1`), or a ladder
    /// file (TOML/JSON, as `reel encode --ladder` takes).
    #[serde(default = "default_ladder")]
    pub ladder: LadderChoice,
    /// The work folder (state, renditions, package); default `.reel-work/<id>` beside the job.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    pub title: TitleSpec,
    #[serde(default)]
    pub analysis: AnalysisSpec,
    #[serde(default)]
    pub encode: EncodeSpec,
    #[serde(default)]
    pub packaging: PackagingSpec,
    /// Scrubbing thumbnails (`[thumbnails]`), taken from the encode's decode.
    #[serde(default)]
    pub thumbnails: ThumbnailSpec,
    /// Quality control of the encoded renditions (`[quality]`).
    #[serde(default)]
    pub quality: QualitySpec,
    #[serde(default)]
    pub encryption: Option<EncryptionSpec>,
    pub destination: DestinationSpec,
    /// Subtitle and caption files (`[[subtitles]]`), packaged as text tracks.
    #[serde(default)]
    pub subtitles: Vec<SubtitleSpec>,
    /// Audio tracks besides the source's first (`[[audio]]`): dubbed dialogue, commentary,
    /// audio description; each from a stream of the source or from another file.
    #[serde(default)]
    pub audio: Vec<AudioTrackSpec>,
}

/// An audio track of the title besides its main audio (the source's first audio stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioTrackSpec {
    /// Any audio or media file GStreamer reads (WAV, FLAC, MP4, ...), relative to the job
    /// file; the title's source when left out.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Which of the file's audio tracks, from 1 (default 1; the source's first audio track
    /// is the main audio already, so an entry without `path` names a later one).
    #[serde(default)]
    pub track: Option<usize>,
    /// BCP 47 language tag (`de`, `pt-BR`); the track's own language tag when left out.
    #[serde(default)]
    pub language: Option<String>,
    /// `main`, `dub`, `commentary` or `description` (audio description).
    pub role: reel_media::AudioRole,
    /// What players list (`Director's commentary`); the language's name and the role
    /// (`English audio description`) when left out.
    #[serde(default)]
    pub name: Option<String>,
}

impl AudioTrackSpec {
    /// The track with its path resolved against `base` and its language checked against the
    /// registry. An error names the entry.
    pub(crate) fn input(&self, base: &Path) -> Result<crate::audio::AudioTrackInput, String> {
        let what = match &self.path {
            Some(p) => format!("({})", p.display()),
            None => format!("(source audio track {})", self.track.unwrap_or(1)),
        };
        let language = match &self.language {
            Some(tag) => Some(
                reel_text::Language::parse(tag)
                    .map_err(|e| format!("{what}: {e}"))?
                    .track_language(),
            ),
            None => None,
        };
        let track = self.track.unwrap_or(1);
        if track == 0 {
            return Err(format!("{what}: track counts from 1"));
        }
        if self.path.is_none() && track == 1 {
            return Err(format!(
                "{what}: the source's first audio track is the main audio already; give \
                 path, or track = 2 or later"
            ));
        }
        let title = self
            .name
            .as_deref()
            .map(reel_media::track_title)
            .transpose()
            .map_err(|e| format!("{what}: {e}"))?;
        Ok(crate::audio::AudioTrackInput {
            file: self.path.as_ref().map(|p| base.join(p)),
            stream: track - 1,
            language,
            role: self.role,
            title,
        })
    }
}

/// A subtitle or caption file of the title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubtitleSpec {
    /// WebVTT (`.vtt`) or SubRip (`.srt`), relative to the job file.
    pub path: PathBuf,
    /// BCP 47 language tag (`en`, `fr-CA`).
    pub language: String,
    /// `subtitles` (default), `captions` (SDH) or `forced`.
    #[serde(default)]
    pub kind: reel_media::TextKind,
    /// What players list; the language's name (and the kind) when left out.
    #[serde(default)]
    pub name: Option<String>,
}

impl SubtitleSpec {
    /// The file as the packager takes it: the path resolved against `base`, the language
    /// checked against the registry, its DASH form the package's `dash_text`.
    fn input(
        &self,
        base: &Path,
        dash_text: crate::DashText,
    ) -> Result<crate::SubtitleInput, String> {
        let language = reel_text::Language::parse(&self.language)
            .map_err(|e| format!("({}): {e}", self.path.display()))?;
        let name = self
            .name
            .as_deref()
            .map(reel_media::track_title)
            .transpose()
            .map_err(|e| format!("({}): {e}", self.path.display()))?;
        Ok(crate::SubtitleInput {
            path: base.join(&self.path),
            language,
            kind: self.kind,
            name,
            dash_text,
        })
    }
}

fn default_ladder() -> LadderChoice {
    LadderChoice::PerTitle
}

/// The title and its catalog metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TitleSpec {
    /// Letters, digits, `-` and `_`: names the work folder and goes into the title record.
    pub id: String,
    /// The mezzanine: a path (relative to the job file) or `s3://bucket/key`, which a run
    /// copies into its work folder by ranged GETs (once; later runs reuse the copy).
    pub source: PathBuf,
    /// Where an `s3://` source is served from (credentials from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`); AWS itself when left out.
    #[serde(default)]
    pub source_s3: Option<S3Endpoint>,
    #[serde(default)]
    pub name: Option<String>,
    /// Free-form catalog fields (genres, year, maturity rating, description, ...), copied into
    /// the title record.
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// An S3 service other than AWS's: an endpoint URL, a region, path-style addressing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Endpoint {
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub path_style: Option<bool>,
}

/// Where the title's source is, parsed from [`TitleSpec::source`].
#[derive(Debug, Clone, PartialEq)]
pub enum SourceLocation {
    File(PathBuf),
    S3 {
        bucket: String,
        key: String,
        options: S3Options,
    },
}

impl SourceLocation {
    /// For messages: the path, or `s3://bucket/key`.
    pub fn name(&self) -> String {
        match self {
            SourceLocation::File(p) => p.display().to_string(),
            SourceLocation::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

/// Constraints for a per-title ladder (the rest as `reel analyze` defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    /// Codec of the per-title ladder: `h264` (the default) or `av1` (constant-quality trials
    /// and rungs).
    #[serde(default, with = "video_codec")]
    pub codec: Option<Codec>,
    /// The encoder of the trials and the rungs: `svt-av1` or `rav1e` for AV1 (SVT-AV1 by
    /// default when built in), `x264` for H.264.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<reel_encoder::VideoEncoder>,
    pub max_rungs: Option<usize>,
    pub ceiling: Option<f64>,
    pub floor: Option<f64>,
    pub max_height: Option<u32>,
    /// The devices' decoder level for the codec (`3.1`, `4.0`, ...).
    pub level: Option<String>,
    pub min_bitrate: Option<f64>,
    pub max_bitrate: Option<f64>,
}

impl AnalysisSpec {
    /// The ladder's codec: H.264 unless the job says otherwise.
    pub fn codec(&self) -> Codec {
        self.codec
            .or(self.encoder.map(|e| e.codec()))
            .unwrap_or(Codec::H264)
    }

    /// The encoder of the trials and the rungs: the one named, else the codec's default.
    /// Errors when it is not the codec's or not in this build.
    pub fn encoder(&self) -> Result<reel_encoder::VideoEncoder, String> {
        reel_encoder::VideoEncoder::choose(self.encoder, self.codec())
            .map_err(|why| format!("analysis: {why}"))
    }
}

/// `analysis.codec` as its name in the job file: a video codec, parsed when the job is read.
mod video_codec {
    use reel_media::{Codec, TrackKind};
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(codec: &Option<Codec>, s: S) -> Result<S::Ok, S::Error> {
        codec.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Codec>, D::Error> {
        let name = String::deserialize(d)?;
        match Codec::from_name(&name) {
            Some(c) if c.kind() == TrackKind::Video => Ok(Some(c)),
            _ => Err(D::Error::custom(format!(
                "analysis.codec '{name}' must be h264 or av1"
            ))),
        }
    }
}

/// How the title is encoded: in chunks (work units) on a pool of local workers.
///
/// Neither setting changes what the renditions are (their rungs, key frames and segments),
/// so neither starts a title over; finished units are reused while their chunks stay the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodeSpec {
    /// Seconds of video per unit, rounded to a whole number of segments: what a crash costs
    /// at most per worker.
    pub chunk_duration: f64,
    /// Units encoded at a time; by default as many as keep every core busy
    /// ([`reel_units::units_at_once`]). Fewer units in flight is less work lost to a crash.
    pub workers: Option<usize>,
}

impl Default for EncodeSpec {
    fn default() -> Self {
        EncodeSpec {
            chunk_duration: reel_units::DEFAULT_CHUNK_SECONDS,
            workers: None,
        }
    }
}

/// CMAF packaging and manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackagingSpec {
    /// Seconds; segments start on key frames at or after it.
    pub segment_duration: f64,
    /// One file per track with a `sidx` (byte ranges) instead of a file per segment.
    pub single_file: bool,
    /// The form of DASH text tracks: `source` (TTML as IMSC1, the rest as WebVTT), `webvtt`
    /// or `imsc1`. HLS always gets WebVTT segments.
    #[serde(default)]
    pub dash_text: crate::DashText,
    /// A trick-play track (key frames of the smallest video rendition) for DASH fast forward
    /// and rewind; HLS has I-frame playlists either way.
    pub trick_play: bool,
}

impl Default for PackagingSpec {
    fn default() -> Self {
        PackagingSpec {
            segment_duration: reel_packager::DEFAULT_SEGMENT_SECONDS,
            single_file: false,
            dash_text: crate::DashText::default(),
            trick_play: false,
        }
    }
}

/// Quality control after the encode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualitySpec {
    /// Score every frame of every video rendition against the source with VMAF (as the
    /// per-title analysis scores its trials) and record it in `title.json`: per rendition,
    /// and in the analysis beside each rung's prediction. About one more decode of every
    /// rendition and VMAF at the source's size; off by default. Needs the `vmaf` feature.
    pub measure: bool,
}

/// Thumbnails for scrubbing: a tile every `interval` seconds, `width` pixels wide (the height
/// keeps the picture's aspect), laid `columns` x `rows` to a JPEG sprite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThumbnailSpec {
    pub enabled: bool,
    pub interval: f64,
    pub width: u32,
    pub columns: u32,
    pub rows: u32,
}

impl Default for ThumbnailSpec {
    fn default() -> Self {
        ThumbnailSpec {
            enabled: true,
            interval: 5.0,
            width: 320,
            columns: 10,
            rows: 10,
        }
    }
}

impl ThumbnailSpec {
    fn validate(&self) -> Result<(), String> {
        if !(0.5..=600.0).contains(&self.interval) {
            return Err(format!(
                "thumbnails.interval {} s is outside 0.5-600",
                self.interval
            ));
        }
        if !(32..=1920).contains(&self.width) {
            return Err(format!(
                "thumbnails.width {} is outside 32-1920 pixels",
                self.width
            ));
        }
        for (what, n) in [("columns", self.columns), ("rows", self.rows)] {
            if !(1..=30).contains(&n) {
                return Err(format!("thumbnails.{what} {n} is outside 1-30"));
            }
        }
        // A JPEG is at most 65,535 pixels wide or high; a tile at most 4 times as high as
        // it is wide.
        if self.columns * self.width > 65_535 || self.rows * self.width * 4 > 65_535 {
            return Err(format!(
                "thumbnails: {}x{} tiles {} pixels wide make a sprite larger than a JPEG can be",
                self.columns, self.rows, self.width
            ));
        }
        Ok(())
    }

    /// The thumbnails to take from an encode of `plan`'s video (none when off or without
    /// video).
    pub(crate) fn plan(
        &self,
        plan: &reel_encoder::EncodePlan,
    ) -> Option<reel_encoder::ThumbnailPlan> {
        let video = plan.source.video()?;
        (self.enabled && !plan.rungs.is_empty()).then(|| {
            reel_encoder::ThumbnailPlan::new(video, plan.frame_rate, self.interval, self.width)
        })
    }
}

/// Common Encryption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSpec {
    /// `cenc` or `cbcs`.
    #[serde(with = "scheme_name")]
    pub scheme: Scheme,
    /// `generate` (fresh keys per track class, written to `keys_out`), or a CPIX file.
    #[serde(default = "default_keys")]
    pub keys: String,
    /// Where generated keys are written (default `keys.cpix` in the work folder). Re-runs
    /// read them back, so a resumed title keeps its keys. Never published.
    #[serde(default)]
    pub keys_out: Option<PathBuf>,
    /// DRM systems to signal: clearkey, widevine, playready, fairplay.
    #[serde(default = "default_drm", with = "drm_names")]
    pub drm: Vec<DrmSystem>,
    /// ClearKey licence server URL for the MPD.
    #[serde(default)]
    pub license_url: Option<String>,
    #[serde(default)]
    pub playready_license_url: Option<String>,
    #[serde(default)]
    pub hls_key_uri: Option<String>,
}

fn default_keys() -> String {
    GENERATE_KEYS.into()
}

fn default_drm() -> Vec<DrmSystem> {
    vec![DrmSystem::ClearKey]
}

/// `scheme` as its name in the job file, parsed when the job is read.
mod scheme_name {
    use reel_drm::Scheme;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(scheme: &Scheme, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(scheme.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Scheme, D::Error> {
        let text = String::deserialize(d)?;
        Scheme::parse(&text).map_err(|e| D::Error::custom(format!("encryption.scheme: {e}")))
    }
}

/// `drm` as names in the job file, parsed when the job is read.
mod drm_names {
    use reel_drm::DrmSystem;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(systems: &[DrmSystem], s: S) -> Result<S::Ok, S::Error> {
        systems
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DrmSystem>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        DrmSystem::parse_list(&names.join(","))
            .map_err(|e| D::Error::custom(format!("encryption.drm: {e}")))
    }
}

impl EncryptionSpec {
    /// The key file: where generated keys go (and are read back on a re-run), or the given
    /// CPIX file. `base` is the job file's folder, `work` the work folder.
    pub fn key_file(&self, base: &Path, work: &Path) -> PathBuf {
        if self.keys == GENERATE_KEYS {
            self.keys_out
                .as_ref()
                .map_or_else(|| work.join("keys.cpix"), |p| base.join(p))
        } else {
            base.join(&self.keys)
        }
    }

    /// The packager's protection settings for title `title_id`, keys in `key_file`.
    pub fn settings(&self, title_id: &str, key_file: &Path) -> ProtectionSettings {
        let keys = if self.keys == GENERATE_KEYS {
            KeySource::Generate {
                cpix: key_file.to_path_buf(),
                keep_existing: true,
            }
        } else {
            KeySource::Cpix(key_file.to_path_buf())
        };
        let mut s = ProtectionSettings::new(self.scheme, keys, title_id);
        s.signalling = Signalling {
            systems: self.drm.clone(),
            clearkey_license_url: self.license_url.clone(),
            playready_license_url: self.playready_license_url.clone(),
            hls_key_uri: self.hls_key_uri.clone(),
            fairplay_key_uri: None,
            widevine_content_id: Some(title_id.to_string()),
        };
        s
    }
}

/// `keys = "generate"`: fresh keys per track class.
const GENERATE_KEYS: &str = "generate";

/// Where the title goes: `file://PATH` or `s3://bucket/prefix`, with S3 options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    pub url: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Uploads in flight at once.
    #[serde(default = "default_parallel")]
    pub parallel_uploads: usize,
    /// Create the bucket when it does not exist (test servers, demos).
    #[serde(default)]
    pub create_bucket: bool,
}

fn default_parallel() -> usize {
    4
}

impl DestinationSpec {
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            create_bucket: self.create_bucket,
            ..S3Options::at(self.endpoint.clone(), self.region.clone(), self.path_style)
        }
    }
}

impl Job {
    /// Reads a job file: JSON when it ends in `.json`, TOML otherwise.
    pub fn from_file(path: &Path) -> Result<Job, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Job {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let job = if is_json {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        let job: Job = job.map_err(|detail| PipelineError::Job {
            path: path.to_path_buf(),
            detail,
        })?;
        job.validate().map_err(|detail| PipelineError::Job {
            path: path.to_path_buf(),
            detail,
        })?;
        Ok(job)
    }

    /// Parses and checks a TOML job.
    pub fn from_toml(text: &str) -> Result<Job, PipelineError> {
        let bad = |detail: String| PipelineError::Job {
            path: PathBuf::from("<job>"),
            detail,
        };
        let job: Job = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        job.validate().map_err(bad)?;
        Ok(job)
    }

    /// Everything that can be checked without touching the source or the destination.
    /// The source: a file relative to `base`, or an object in S3.
    pub fn source_location(&self, base: &Path) -> Result<SourceLocation, String> {
        let text = self.title.source.to_string_lossy();
        if !text.starts_with("s3://") {
            if self.title.source_s3.is_some() {
                return Err("title.source_s3 is only for an s3:// source".into());
            }
            return Ok(SourceLocation::File(base.join(&self.title.source)));
        }
        // The one parser of s3:// URLs (bucket name and key checked); a source is one object.
        let parsed = Destination::parse(&text).map_err(|e| format!("title.source: {e}"))?;
        match parsed {
            Destination::S3 { bucket, prefix } if !prefix.is_empty() && !text.ends_with('/') => {
                let at = self.title.source_s3.clone().unwrap_or_default();
                Ok(SourceLocation::S3 {
                    bucket,
                    key: prefix,
                    options: S3Options::at(at.endpoint, at.region, at.path_style),
                })
            }
            _ => Err(format!(
                "title.source '{text}' must be s3://BUCKET/KEY naming one object"
            )),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let id = &self.title.id;
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "title id '{id}' must be 1-128 letters, digits, '-' or '_'"
            ));
        }
        reel_packager::check_segment_duration(self.packaging.segment_duration)
            .map_err(|e| format!("packaging.segment_duration: {e}"))?;
        self.analysis.encoder()?;
        if let Some(l) = &self.analysis.level {
            reel_ladder::device::Level::parse(self.analysis.codec(), l)
                .map_err(|e| format!("analysis.level: {e}"))?;
        }
        if !(self.encode.chunk_duration >= 1.0 && self.encode.chunk_duration <= 3600.0) {
            return Err(format!(
                "encode.chunk_duration {} s is outside 1-3600",
                self.encode.chunk_duration
            ));
        }
        self.thumbnails.validate()?;
        if self.encode.workers.is_some_and(|w| w == 0 || w > 64) {
            return Err("encode.workers must be 1-64".into());
        }
        Destination::parse(&self.destination.url).map_err(|e| e.to_string())?;
        self.source_location(Path::new(""))?;
        if self.destination.parallel_uploads == 0 || self.destination.parallel_uploads > 64 {
            return Err("destination.parallel_uploads must be 1-64".into());
        }
        for (i, sub) in self.subtitles.iter().enumerate() {
            sub.input(Path::new(""), self.packaging.dash_text)
                .map_err(|e| format!("subtitles[{i}] {e}"))?;
        }
        for (i, audio) in self.audio.iter().enumerate() {
            audio
                .input(Path::new(""))
                .map_err(|e| format!("audio[{i}] {e}"))?;
        }
        if let Some(e) = &self.encryption {
            if e.keys != GENERATE_KEYS && e.keys_out.is_some() {
                return Err(
                    "encryption.keys_out is for generated keys (keys = \"generate\")".into(),
                );
            }
        }
        Ok(())
    }

    /// The work folder, given the job file's folder.
    pub fn work_dir(&self, base: &Path) -> PathBuf {
        match &self.work_dir {
            Some(w) => base.join(w),
            None => base.join(".reel-work").join(&self.title.id),
        }
    }

    /// A fingerprint of what decides the renditions (source identity, ladder, analysis).
    pub(crate) fn encode_fingerprint(&self, source: &Path) -> Result<String, PipelineError> {
        let (size, modified) = file_identity(source).map_err(|e| PipelineError::Io {
            path: source.to_path_buf(),
            source: e,
        })?;
        let what = serde_json::json!({
            "source": source,
            "size": size,
            "modified": modified,
            "ladder": self.ladder,
            "analysis": self.analysis,
        });
        Ok(fingerprint(&what))
    }

    /// A fingerprint of what decides the package, beyond the renditions: the packaging and
    /// encryption settings and the subtitles (their settings and their files' bytes).
    pub(crate) fn package_fingerprint(&self, base: &Path) -> String {
        // Streamed: a subtitle "file" may be the mezzanine itself (its text track).
        let files: Vec<String> = self
            .subtitles
            .iter()
            .map(|s| {
                reel_publish::file_sha256(&base.join(&s.path))
                    .map_or_else(|_| "unreadable".into(), |(hash, _)| hash)
            })
            .collect();
        fingerprint(&serde_json::json!({
            "packaging": self.packaging,
            "quality": self.quality,
            "encryption": self.encryption,
            "subtitles": self.subtitles,
            "subtitle_files": files,
        }))
    }

    /// The subtitle files as the packager takes them, paths resolved against `base`.
    pub(crate) fn subtitle_inputs(
        &self,
        base: &Path,
    ) -> Result<Vec<crate::SubtitleInput>, PipelineError> {
        self.subtitles
            .iter()
            .map(|s| {
                s.input(base, self.packaging.dash_text)
                    .map_err(PipelineError::Unsupported)
            })
            .collect()
    }
}

/// A file's identity without reading it: its size and modification time (ns since the epoch,
/// as text).
pub(crate) fn file_identity(path: &Path) -> std::io::Result<(u64, String)> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((meta.len(), modified.to_string()))
}

pub(crate) fn fingerprint(v: &serde_json::Value) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(v.to_string().as_bytes()))[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_jobs_say_what_is_wrong() {
        let base = r#"
            [title]
            id = "t1"
            source = "a.mp4"
            [destination]
            url = "s3://bucket/titles/t1"
            endpoint = "http://127.0.0.1:9000"
        "#;
        let job = Job::from_toml(base).unwrap();
        assert_eq!(job.ladder, LadderChoice::PerTitle);
        assert!(job.destination.s3_options().path_style);
        for (edit, needle) in [
            (base.replace("\"t1\"", "\"../x\""), "title id"),
            (base.replace("s3://bucket", "ftp://bucket"), "ftp://"),
            (
                format!("{base}\n[packaging]\nsegment_duration = 0.1"),
                "segment_duration",
            ),
            (
                format!("{base}\n[encryption]\nscheme = \"rot13\""),
                "encryption.scheme",
            ),
            (
                format!("{base}\n[encryption]\nscheme = \"cenc\"\ndrm = [\"nagra\"]"),
                "encryption.drm",
            ),
            (
                format!("{base}\n[analysis]\ncodec = \"vp9\""),
                "analysis.codec",
            ),
            (
                format!("{base}\n[analysis]\nlevel = \"3.3\""),
                "analysis.level",
            ),
            (
                format!("{base}\n[[subtitles]]\npath = \"en.vtt\"\nlanguage = \"english\""),
                "subtitles[0] (en.vtt): language 'english'",
            ),
            (
                format!(
                    "{base}\n[[subtitles]]\npath = \"a.vtt\"\nlanguage = \"en\"\nkind = \"sdh\""
                ),
                "kind",
            ),
            (base.replace("[title]", "colour = 1\n[title]"), "colour"),
            (
                base.replace("\"a.mp4\"", "\"s3://bucket\""),
                "s3://BUCKET/KEY",
            ),
            (
                base.replace("\"a.mp4\"", "\"s3://bucket/dir/\""),
                "s3://BUCKET/KEY",
            ),
            (
                base.replace("\"a.mp4\"", "\"s3://bucket/../x\""),
                "title.source",
            ),
            (
                base.replace(
                    "[destination]",
                    "[title.source_s3]\nendpoint = \"http://s3\"\n[destination]",
                ),
                "only for an s3:// source",
            ),
            (format!("{base}\n[encode]\nworkers = 0"), "encode.workers"),
        ] {
            let e = Job::from_toml(&edit).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    /// Subtitle languages reach the packager in BCP 47's case, so `fr-ca` and `fr-CA` are
    /// one language when tracks are told apart.
    #[test]
    fn subtitle_languages_are_parsed_once_at_load() {
        let job = Job::from_toml(
            r#"
            [title]
            id = "t1"
            source = "a.mp4"
            [destination]
            url = "file://out"
            [[subtitles]]
            path = "fr.srt"
            language = "fr-ca"
            kind = "captions"
        "#,
        )
        .unwrap();
        let inputs = job.subtitle_inputs(Path::new("/jobs")).unwrap();
        assert_eq!(inputs[0].language.tag, "fr-CA");
        assert_eq!(inputs[0].language.iso639_2, "fra");
        assert_eq!(inputs[0].path, Path::new("/jobs/fr.srt"));
    }

    #[test]
    fn a_source_is_a_path_beside_the_job_or_an_object_in_s3() {
        let job = |source: &str, extra: &str| {
            Job::from_toml(&format!(
                "[title]\nid = \"t\"\nsource = \"{source}\"\n{extra}\n[destination]\nurl = \"file:///tmp/x\""
            ))
            .unwrap()
        };
        assert_eq!(
            job("in/a.mp4", "").source_location(Path::new("/jobs")),
            Ok(SourceLocation::File(PathBuf::from("/jobs/in/a.mp4")))
        );
        let s3 = job(
            "s3://mezz/shows/a b.mov",
            "[title.source_s3]\nendpoint = \"http://127.0.0.1:9000\"",
        )
        .source_location(Path::new("/jobs"))
        .unwrap();
        let SourceLocation::S3 {
            bucket,
            key,
            options,
        } = &s3
        else {
            panic!("{s3:?}");
        };
        assert_eq!((bucket.as_str(), key.as_str()), ("mezz", "shows/a b.mov"));
        assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(options.path_style);
        assert_eq!(s3.name(), "s3://mezz/shows/a b.mov");
    }
}
