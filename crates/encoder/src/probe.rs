//! `probe`: what a media file contains, through GStreamer's discoverer.

use crate::gst_util::{existing_file, file_uri, init};
use crate::EncodeError;
use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use gstreamer_pbutils::prelude::*;
use reel_media::Rational;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a media file contains.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaInfo {
    pub path: PathBuf,
    /// Container description, e.g. "ISO MP4/M4A"; `None` for a bare elementary stream.
    pub container: Option<String>,
    /// Duration in seconds.
    pub duration: f64,
    pub seekable: bool,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamInfo {
    Video(VideoStream),
    Audio(AudioStream),
    Subtitle {
        index: usize,
        language: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoStream {
    pub index: usize,
    /// Human codec description, e.g. "H.264 (High Profile)".
    pub codec: String,
    /// GStreamer caps name, e.g. `video/x-h264`.
    pub media_type: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Rational,
    pub pixel_aspect: Rational,
    /// Pixel format, e.g. `I420` or `4:2:0`.
    pub pixel_format: Option<String>,
    pub bit_depth: Option<u32>,
    /// Colorimetry as GStreamer names it, e.g. `bt709` or `2:3:7:1`.
    pub colorimetry: Option<String>,
    /// The same as ISO/IEC 23091-2 code points (what `colr`/VUI carry).
    pub color: Option<reel_media::ColorInfo>,
    pub interlaced: bool,
    pub bitrate: Option<u32>,
    /// Clockwise rotation the container asks for to show the picture upright (0, 90, 180
    /// or 270: GStreamer's `image-orientation` tag, from an MP4/MOV display matrix), as
    /// phones record portrait video. The encoder turns the pictures; sizes here are coded.
    #[serde(default)]
    pub rotation: u32,
}

impl VideoStream {
    /// Whether the picture is shown turned by a quarter (width and height swap).
    pub fn quarter_turn(&self) -> bool {
        self.rotation % 180 == 90
    }

    /// Display aspect ratio as width/height in display units, upright.
    pub fn display_aspect(&self) -> f64 {
        let par = if self.pixel_aspect.is_zero() {
            1.0
        } else {
            self.pixel_aspect.as_f64()
        };
        let aspect = f64::from(self.width) * par / f64::from(self.height.max(1));
        if self.quarter_turn() {
            1.0 / aspect
        } else {
            aspect
        }
    }

    /// Lines of the upright picture (the coded width for a quarter turn).
    pub fn upright_height(&self) -> u32 {
        if self.quarter_turn() {
            self.width
        } else {
            self.height
        }
    }

    /// Why this stream cannot be encoded yet, if it cannot: HDR (PQ or HLG transfer) would
    /// be converted to 8-bit SDR without tone mapping, a washed-out picture that looks
    /// complete.
    pub fn unsupported(&self) -> Option<String> {
        let transfer = self.color.map(|c| c.transfer)?;
        let name = match transfer {
            16 => "HDR10 / PQ (SMPTE ST 2084)",
            18 => "HLG (ARIB STD-B67)",
            _ => return None,
        };
        Some(format!(
            "the video is {name}: HDR output is not supported yet, and converting it to SDR without tone mapping would give a washed-out picture"
        ))
    }
}

/// `image-orientation` tag values (GStreamer's names) as clockwise degrees; flips are
/// treated as their rotation.
fn rotation_of(orientation: &str) -> u32 {
    match orientation.trim_start_matches("flip-") {
        "rotate-90" => 90,
        "rotate-180" => 180,
        "rotate-270" => 270,
        _ => 0,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AudioStream {
    pub index: usize,
    pub codec: String,
    pub media_type: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub bit_depth: Option<u32>,
    pub language: Option<String>,
    pub bitrate: Option<u32>,
}

impl MediaInfo {
    pub fn video(&self) -> Option<&VideoStream> {
        self.streams.iter().find_map(|s| match s {
            StreamInfo::Video(v) => Some(v),
            _ => None,
        })
    }

    /// The first video stream, or the error that the file has none (naming it).
    pub fn require_video(&self) -> Result<&VideoStream, EncodeError> {
        self.video().ok_or_else(|| EncodeError::NoVideo {
            path: self.path.clone(),
        })
    }

    /// The first audio stream: the title's main audio.
    pub fn audio(&self) -> Option<&AudioStream> {
        self.audio_streams().next()
    }

    /// The audio streams in the container's order.
    pub fn audio_streams(&self) -> impl Iterator<Item = &AudioStream> {
        self.streams.iter().filter_map(|s| match s {
            StreamInfo::Audio(a) => Some(a),
            _ => None,
        })
    }
}

fn nonzero(v: u32) -> Option<u32> {
    (v > 0).then_some(v)
}

/// Probes `path`: container, duration and every stream.
///
/// A missing file, a file that is not media, a truncated file GStreamer cannot read and a
/// codec with no decoder each give an [`EncodeError`] naming the file.
pub fn probe(path: &Path) -> Result<MediaInfo, EncodeError> {
    init()?;
    let abs = existing_file(path)?;
    let uri = file_uri(&abs)?;
    let discoverer = pbutils::Discoverer::new(gst::ClockTime::from_seconds(30))
        .map_err(|e| EncodeError::Gst(e.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| classify(path, e.to_string()))?;
    match info.result() {
        pbutils::DiscovererResult::Ok => {}
        pbutils::DiscovererResult::MissingPlugins => {
            return Err(EncodeError::Unsupported {
                path: path.to_path_buf(),
                detail: format!(
                    "no GStreamer plugin for: {}",
                    info.missing_elements_installer_details().join(", ")
                ),
            })
        }
        other => {
            return Err(EncodeError::NotMedia {
                path: path.to_path_buf(),
                detail: format!("{other:?}"),
            })
        }
    }
    let container = info
        .stream_info()
        .filter(|s| s.is::<pbutils::DiscovererContainerInfo>())
        .and_then(|c| c.caps())
        .map(|caps| pbutils::pb_utils_get_codec_description(&caps).to_string());
    let mut streams = Vec::new();
    for (index, s) in info.stream_list().into_iter().enumerate() {
        let caps = s.caps();
        let structure = caps
            .as_ref()
            .and_then(|c| c.structure(0).map(|s| s.to_owned()));
        let media_type = structure
            .as_ref()
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let codec = caps
            .as_ref()
            .map(|c| pbutils::pb_utils_get_codec_description(c).to_string())
            .unwrap_or_else(|| media_type.clone());
        let field = |name: &str| -> Option<String> {
            structure.as_ref().and_then(|s| s.get::<String>(name).ok())
        };
        if let Some(v) = s.downcast_ref::<pbutils::DiscovererVideoInfo>() {
            if v.is_image() && info.duration().unwrap_or_default().is_zero() {
                streams.push(StreamInfo::Video(VideoStream {
                    index,
                    codec,
                    media_type,
                    width: v.width(),
                    height: v.height(),
                    frame_rate: Rational::new(0, 1),
                    pixel_aspect: Rational::new(1, 1),
                    pixel_format: None,
                    bit_depth: nonzero(v.depth()),
                    colorimetry: None,
                    color: None,
                    interlaced: false,
                    bitrate: None,
                    rotation: 0,
                }));
                continue;
            }
            let fr = v.framerate();
            let par = v.par();
            let pixel_format = field("format").or_else(|| field("chroma-format"));
            let bit_depth = structure
                .as_ref()
                .and_then(|s| s.get::<u32>("bit-depth-luma").ok())
                .or_else(|| nonzero(v.depth()).filter(|&d| d <= 16));
            streams.push(StreamInfo::Video(VideoStream {
                index,
                codec,
                media_type,
                width: v.width(),
                height: v.height(),
                frame_rate: Rational::new(fr.numer().max(0) as u32, fr.denom().max(0) as u32),
                pixel_aspect: Rational::new(par.numer().max(0) as u32, par.denom().max(1) as u32),
                pixel_format,
                bit_depth,
                colorimetry: field("colorimetry"),
                color: field("colorimetry")
                    .and_then(|c| crate::gst_util::color_from_colorimetry(&c)),
                interlaced: v.is_interlaced(),
                bitrate: nonzero(v.bitrate()),
                rotation: s
                    .tags()
                    .and_then(|t| {
                        t.get::<gst::tags::ImageOrientation>()
                            .map(|o| rotation_of(o.get()))
                    })
                    .unwrap_or(0),
            }));
        } else if let Some(a) = s.downcast_ref::<pbutils::DiscovererAudioInfo>() {
            streams.push(StreamInfo::Audio(AudioStream {
                index,
                codec,
                media_type,
                sample_rate: a.sample_rate(),
                channels: a.channels(),
                bit_depth: nonzero(a.depth()),
                language: a.language().map(|l| l.to_string()),
                bitrate: nonzero(a.bitrate()),
            }));
        } else if let Some(t) = s.downcast_ref::<pbutils::DiscovererSubtitleInfo>() {
            streams.push(StreamInfo::Subtitle {
                index,
                language: t.language().map(|l| l.to_string()),
            });
        }
    }
    if streams.is_empty() {
        return Err(EncodeError::NotMedia {
            path: path.to_path_buf(),
            detail: "no audio or video streams found".into(),
        });
    }
    Ok(MediaInfo {
        path: path.to_path_buf(),
        container,
        duration: info
            .duration()
            .map(|d| d.nseconds() as f64 / 1e9)
            .unwrap_or(0.0),
        seekable: info.is_seekable(),
        streams,
    })
}

fn classify(path: &Path, detail: String) -> EncodeError {
    let lower = detail.to_lowercase();
    if lower.contains("missing")
        || lower.contains("no suitable plugins")
        || lower.contains("no decoder")
    {
        EncodeError::Unsupported {
            path: path.to_path_buf(),
            detail,
        }
    } else {
        EncodeError::NotMedia {
            path: path.to_path_buf(),
            detail,
        }
    }
}
