//! The encode plan: a ladder applied to one probed source (which rungs at which sizes, which
//! audio renditions, which notices), decided before any pipeline exists.

use crate::stream::SampleStream;
use crate::timing::video_timescale;
use crate::{EncodeError, Ladder, MediaInfo, RateControl, Rung, VideoEncoder};
use reel_media::{Codec, Rational};

/// One video rendition as it will be encoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RungPlan {
    pub track_id: u32,
    pub name: String,
    pub codec: Codec,
    /// The encoder of the codec (rav1e or SVT-AV1 for AV1, x264 for H.264).
    pub encoder: VideoEncoder,
    pub width: u32,
    pub height: u32,
    pub rate: RateControl,
    /// Speed preset on the encoder's scale ([`VideoEncoder::speeds`]; higher is faster).
    pub speed: u8,
}

/// An audio rendition as it will be encoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioPlan {
    pub track_id: u32,
    /// `audio` (stereo, or fewer channels), `audio_51` (5.1).
    pub name: String,
    pub codec: Codec,
    pub bitrate_kbps: u32,
    pub channels: u32,
    pub sample_rate: u32,
    /// ISO 639-2/T code (`mdhd`), `und` when unknown.
    pub language: String,
    /// Which of the source's audio streams (0 for the first) it is encoded from.
    #[serde(default)]
    pub stream: usize,
    #[serde(default)]
    pub role: reel_media::AudioRole,
    /// The name players show for it, when the job gives one (`[[audio]] name`).
    #[serde(default)]
    pub title: Option<String>,
}

/// An audio track of the title besides its main audio: a stream of the source or of another
/// file (dubbed dialogue, commentary, audio description).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInput {
    /// Which of the file's audio streams (0 for the first).
    pub stream: usize,
    pub role: reel_media::AudioRole,
    /// ISO 639-2/T code; the stream's own language tag when `None`.
    pub language: Option<String>,
    /// The rendition's name (its file's and folder's); a 5.1 rendition adds `_51`.
    pub name: String,
    /// The name players show for it (`None`: derived from language and role).
    pub title: Option<String>,
}

/// A ladder applied to one source: sizes, timescales and the key frame cadence.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EncodePlan {
    pub source: MediaInfo,
    pub frame_rate: Rational,
    /// Video timescale and frame duration in it.
    pub timescale: u32,
    pub frame_duration: u32,
    /// Frames between forced key frames (the same in every rung).
    pub keyframe_frames: u64,
    pub frames_total: u64,
    pub rungs: Vec<RungPlan>,
    /// The audio renditions from the source's first audio stream: stereo (or mono) first,
    /// then 5.1 when the source has it and the ladder asks for it.
    pub audio: Vec<AudioPlan>,
    /// Why rungs or streams were left out.
    pub notices: Vec<String>,
    /// Hand this decoded frame (counted from 0 at the output frame rate) to the caller as an
    /// [`Event::Still`], e.g. for a poster, without a second decode. `None` by default.
    pub still_at: Option<u64>,
    /// Thumbnails to take from the decode (trick play), `None` by default.
    #[serde(default)]
    pub thumbnails: Option<ThumbnailPlan>,
    /// Encode only these frames of the title (one chunk); `None` for the whole title.
    pub range: Option<FrameRange>,
    /// Read the source from this URL instead of the file at `source.path` (which then only
    /// names it in messages): a worker's time-limited HTTP URL to the object store, which
    /// the decoder reads by ranges, so a chunk costs the bytes it needs, not the whole
    /// source. It carries a signature: it never travels with the plan nor shows in errors.
    #[serde(skip)]
    pub source_url: Option<String>,
}

/// Thumbnails for trick play: frame 0 and every `every_frames` frames after it (counted from
/// the title's start at the output frame rate), scaled to `width` x `height` and handed over
/// as [`Event::Thumbnail`](crate::Event) from the encode's own decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThumbnailPlan {
    pub every_frames: u64,
    pub width: u32,
    pub height: u32,
}

impl ThumbnailPlan {
    /// A thumbnail `width` pixels wide every `seconds` of `video` at the output `frame_rate`:
    /// the height keeps the upright picture's display aspect (square pixels, a phone's
    /// portrait video stands), even; at least one frame apart.
    pub fn new(video: &crate::VideoStream, frame_rate: Rational, seconds: f64, width: u32) -> Self {
        let width = even(f64::from(width.max(2)));
        let height = even(f64::from(width) / video.display_aspect().max(1e-3)).max(2);
        ThumbnailPlan {
            every_frames: ((seconds * frame_rate.as_f64()).round() as u64).max(1),
            width,
            height,
        }
    }

    /// Whether frame `frame` of the title is a thumbnail's.
    pub fn takes(&self, frame: u64) -> bool {
        frame.is_multiple_of(self.every_frames)
    }
}

/// Frames `start..end` of a title, counted from 0 at the plan's output frame rate: one chunk.
/// Every rung starts it with a key frame.
///
/// The `lead_in` frames before `start` go to the H.264 rungs' encoders first (the key frame at
/// `start` forced) so that x264's rate control and VBV enter the chunk as they would in the
/// middle of a whole-title encode instead of from a cold start, which showed as a quality dip
/// about half a second after each join. Their samples come out too, stamped from 0 at the
/// first lead-in frame, sync sample at `lead_in` frames: the caller drops them and moves the
/// rest by the chunk's start. AV1 rungs (rav1e at a constant quantizer has no rate control
/// to warm up) never see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameRange {
    pub start: u64,
    pub end: u64,
    #[serde(default)]
    pub lead_in: u64,
    /// Every chunk but the title's last delivers exactly `end - start` frames (the last one
    /// held when the source runs out early), so that the next chunk's first frame lands where
    /// it belongs. The last chunk (`false`) runs on to the source's end, as a whole-title
    /// encode does; its `end` is the frame count expected from the probed duration.
    pub exact: bool,
}

impl FrameRange {
    /// The first frame decoded: the lead-in's first.
    pub fn first(&self) -> u64 {
        self.start.saturating_sub(self.lead_in)
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `x` rounded to the nearest even number of pixels, at least 2 (4:2:0 needs even sizes). The
/// ladder analysis sizes its trials with it, so trials and rungs agree.
/// Frames from one key frame to the next in every rung: the key-frame interval at the
/// frame rate, rounded, at least 1. Per-title trials code their windows with the same GOP.
pub fn keyframe_frames(interval_seconds: f64, frame_rate: Rational) -> u64 {
    ((interval_seconds * frame_rate.as_f64()).round() as u64).max(1)
}

pub fn even(x: f64) -> u32 {
    (((x / 2.0).round() as u32) * 2).max(2)
}

impl EncodePlan {
    /// Applies `ladder` to the probed source.
    pub fn new(source: MediaInfo, ladder: &Ladder) -> Result<Self, EncodeError> {
        ladder.validate()?;
        let path = source.path.clone();
        let video = source.require_video()?.clone();
        if video.frame_rate.is_zero() {
            return Err(EncodeError::Unsupported {
                path,
                detail: "the video stream has no constant frame rate (a still image or VFR)".into(),
            });
        }
        if video.width < 16 || video.height < 16 {
            return Err(EncodeError::Unsupported {
                path,
                detail: format!(
                    "video is {}x{}, smaller than 16x16",
                    video.width, video.height
                ),
            });
        }
        if let Some(detail) = video.unsupported() {
            return Err(EncodeError::Unsupported { path, detail });
        }
        let frame_rate = video.frame_rate;
        let (timescale, frame_duration) = video_timescale(frame_rate);
        let keyframe_frames = keyframe_frames(ladder.keyframe_interval, frame_rate);
        let mut notices = Vec::new();
        let dar = video.display_aspect();
        let mut rungs: Vec<RungPlan> = Vec::new();
        let height = video.upright_height();
        for r in rungs_for_source(&ladder.rungs, height, &mut notices) {
            rungs.push(Self::rung_plan(&r, height, dar)?);
        }
        for (i, r) in rungs.iter_mut().enumerate() {
            r.track_id = i as u32 + 1;
        }
        // Rung names become file names: make them unique (a 720p AV1 and a 720p H.264 rung).
        for i in 0..rungs.len() {
            if rungs[..i].iter().any(|o| o.name == rungs[i].name) {
                let n = format!("{}_{}", rungs[i].name, rungs[i].codec.name());
                rungs[i].name = if rungs[..i].iter().any(|o| o.name == n) {
                    format!("{n}_{}", rungs[i].track_id)
                } else {
                    n
                };
            }
        }
        let main = AudioInput {
            stream: 0,
            role: reel_media::AudioRole::Main,
            language: None,
            name: "audio".into(),
            title: None,
        };
        let audio = audio_plans(
            ladder.audio.as_ref(),
            source.audio(),
            &main,
            rungs.len() as u32,
        );
        if ladder.audio.is_some() && source.audio().is_none() {
            notices.push("the source has no audio: no audio track".into());
        }
        let frames_total = (source.duration * frame_rate.as_f64()).round() as u64;
        Ok(Self {
            source,
            frame_rate,
            timescale,
            frame_duration,
            keyframe_frames,
            frames_total,
            rungs,
            audio,
            notices,
            still_at: None,
            thumbnails: None,
            range: None,
            source_url: None,
        })
    }

    /// The plan for frames `range` of the title, video only: the same rungs, sizes and key
    /// frame cadence, with progress counted over the range. The still is kept when it lies in
    /// the range.
    pub fn for_range(&self, range: FrameRange) -> EncodePlan {
        EncodePlan {
            frames_total: range.len(),
            audio: Vec::new(),
            notices: Vec::new(),
            still_at: self
                .still_at
                .filter(|s| (range.start..range.end).contains(s)),
            range: Some(range),
            ..self.clone()
        }
    }

    /// The plan for audio `input` of the title, alone: its stream of `source` (the title's
    /// own source or another file) encoded as `ladder` says audio is, with track IDs after
    /// every ID of this plan and of `taken`. An error names the file when it has no such
    /// stream.
    pub fn audio_input(
        &self,
        source: MediaInfo,
        input: &AudioInput,
        ladder: &Ladder,
        taken: u32,
    ) -> Result<EncodePlan, EncodeError> {
        let streams: Vec<&crate::AudioStream> = source.audio_streams().collect();
        let Some(stream) = streams.get(input.stream) else {
            return Err(EncodeError::Unsupported {
                path: source.path.clone(),
                detail: format!(
                    "audio track {} was asked for, and the file has {} audio track{}",
                    input.stream + 1,
                    streams.len(),
                    if streams.len() == 1 { "" } else { "s" }
                ),
            });
        };
        let last_id = self
            .rungs
            .iter()
            .map(|r| r.track_id)
            .chain(self.audio.iter().map(|a| a.track_id))
            .max()
            .unwrap_or(0)
            .max(taken);
        let audio = audio_plans(ladder.audio.as_ref(), Some(stream), input, last_id);
        Ok(EncodePlan {
            source,
            audio,
            ..self.audio_only()
        })
    }

    /// The plan for the audio renditions alone (no video is decoded).
    pub fn audio_only(&self) -> EncodePlan {
        EncodePlan {
            rungs: Vec::new(),
            notices: Vec::new(),
            still_at: None,
            thumbnails: None,
            range: None,
            ..self.clone()
        }
    }

    fn rung_plan(r: &crate::Rung, src_height: u32, dar: f64) -> Result<RungPlan, EncodeError> {
        let height = even(f64::from(r.height.min(src_height)));
        let width = match r.width {
            Some(w) => even(f64::from(w)),
            None => even(f64::from(height) * dar),
        };
        let name = if r.name.is_empty() {
            format!("{height}p")
        } else {
            r.name.clone()
        };
        let encoder = r.video_encoder()?;
        let least = encoder.least_size();
        if width < least || height < least {
            return Err(EncodeError::InvalidLadder(format!(
                "rung {name}: {} encodes pictures of at least {least} pixels each way, not \
                 {width}x{height}{}",
                encoder.name(),
                if encoder == VideoEncoder::SvtAv1 {
                    " (rav1e does: encoder = \"rav1e\")"
                } else {
                    ""
                }
            )));
        }
        Ok(RungPlan {
            track_id: 0,
            name,
            codec: r.codec,
            encoder,
            width,
            height,
            rate: r.rate_control()?,
            speed: r.speed.unwrap_or(encoder.default_speed()),
        })
    }

    /// What besides the plan decides the bytes it encodes to: this crate's version (its
    /// scaler and settings) and the version of every encoder and decoder the plan uses.
    /// Outputs named by a hash of the plan and these stay valid exactly as long as they do.
    pub fn encoders(&self) -> Result<Vec<(String, String)>, EncodeError> {
        crate::gst_util::init()?;
        let mut out = vec![
            (
                "reel-encoder".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (
                "gstreamer".to_string(),
                gstreamer::version_string().to_string(),
            ),
        ];
        let plugin = |element: &str| {
            gstreamer::ElementFactory::find(element)
                .and_then(|f| gstreamer::prelude::PluginFeatureExt::plugin(&f))
                .map(|p| format!("{} {}", p.plugin_name(), p.version()))
                .unwrap_or_else(|| "missing".into())
        };
        if self.rungs.iter().any(|r| r.codec == Codec::H264) {
            out.push(("x264enc".into(), plugin("x264enc")));
        }
        if self.rungs.iter().any(|r| r.encoder == VideoEncoder::Rav1e) {
            out.push(("rav1e".into(), rav1e::version::full()));
        }
        #[cfg(feature = "svt-av1")]
        if self.rungs.iter().any(|r| r.encoder == VideoEncoder::SvtAv1) {
            out.push(("svt-av1".into(), reel_svt_av1::version()));
        }
        for a in &self.audio {
            let element = if a.codec == Codec::Opus {
                "opusenc"
            } else {
                "avenc_aac"
            };
            out.push((element.into(), plugin(element)));
        }
        Ok(out)
    }

    /// Starts encoding. The returned stream yields the tracks and their samples.
    pub fn start(self) -> Result<SampleStream, EncodeError> {
        crate::encode::start(self)
    }
}

/// Channels of the surround rendition (5.1), and its bitrate as a multiple of the stereo one.
const SURROUND_CHANNELS: u32 = 6;
const SURROUND_BITRATE_FACTOR: u32 = 3;

/// The audio renditions of `spec` for the source's audio stream `source`, with track IDs from
/// `first_id + 1`: the stereo one (or mono, for a mono source), and a 5.1 one for a source
/// of six channels or more when `spec.surround` and the codec is AAC.
fn audio_plans(
    spec: Option<&crate::AudioSpec>,
    source: Option<&crate::AudioStream>,
    input: &AudioInput,
    first_id: u32,
) -> Vec<AudioPlan> {
    let (Some(spec), Some(a)) = (spec, source) else {
        return Vec::new();
    };
    let language = input
        .language
        .clone()
        .or_else(|| {
            a.language
                .as_deref()
                .and_then(reel_media::language::iso639_2t)
        })
        .unwrap_or_else(|| "und".into());
    let plan = |name: String, channels: u32, bitrate_kbps: u32, id: u32| AudioPlan {
        track_id: id,
        name,
        codec: spec.codec,
        bitrate_kbps,
        channels,
        sample_rate: 48_000,
        language: language.clone(),
        stream: input.stream,
        role: input.role,
        title: input.title.clone(),
    };
    let mut plans = vec![plan(
        input.name.clone(),
        a.channels.clamp(1, spec.max_channels.max(1)),
        spec.bitrate,
        first_id + 1,
    )];
    if spec.surround && spec.codec == Codec::Aac && a.channels >= SURROUND_CHANNELS {
        plans.push(plan(
            format!("{}_51", input.name),
            SURROUND_CHANNELS,
            spec.bitrate * SURROUND_BITRATE_FACTOR,
            first_id + 2,
        ));
    }
    plans
}

/// A source this much taller than the ladder's tallest rung that fits it gets a rung of its
/// own height: at 0.9, a 270-line source under a 240 rung does, a 250-line one does not.
const OWN_HEIGHT_ABOVE: f64 = 0.9;

/// Whether a source `src_height` lines high lies between two of `heights` (some taller,
/// the tallest of the rest under 90% of it), so that a rung at its own height should be
/// added. The one rule for ladders (`rungs_for_source`) and per-title candidate heights.
pub fn needs_own_height(heights: impl IntoIterator<Item = u32>, src_height: u32) -> bool {
    let (mut taller, mut fitting) = (false, None::<u32>);
    for h in heights {
        if h > src_height {
            taller = true;
        } else {
            fitting = fitting.max(Some(h));
        }
    }
    taller && fitting.is_none_or(|h| f64::from(h) < OWN_HEIGHT_ABOVE * f64::from(src_height))
}

/// The rungs of a ladder that suit a source `src_height` lines high. Rungs taller than the
/// source are dropped (each with a notice). A source that lies between two rungs gets a top
/// rung at its own height in place of the next-taller one (named after its height, that
/// rung's codec, quality and speed; a bitrate interpolated by height between the two rungs),
/// so that a 2.35:1 title 272 lines high is not served at 234 at best. When every rung is
/// taller, the smallest is encoded at the source's height.
fn rungs_for_source(ladder: &[Rung], src_height: u32, notices: &mut Vec<String>) -> Vec<Rung> {
    let (kept, dropped): (Vec<&Rung>, Vec<&Rung>) =
        ladder.iter().partition(|r| r.height <= src_height);
    for r in &dropped {
        notices.push(format!(
            "rung {} ({}p) dropped: the source is only {src_height} lines high",
            r.name, r.height
        ));
    }
    let mut out: Vec<Rung> = kept.iter().map(|r| (*r).clone()).collect();
    // The dropped rung nearest the source (the cheapest of its height).
    let Some(next) = dropped
        .iter()
        .min_by_key(|r| (r.height, r.bitrate.unwrap_or(0)))
    else {
        return out;
    };
    let below = kept
        .iter()
        .filter(|r| r.codec == next.codec)
        .max_by_key(|r| (r.height, r.bitrate.unwrap_or(0)));
    if !needs_own_height(ladder.iter().map(|r| r.height), src_height) {
        return out;
    }
    let mut own = (*next).clone();
    own.height = src_height;
    own.width = None;
    own.name = String::new(); // named after the height it has
    if let (Some(top), Some(b), Some(lower)) = (next.bitrate, below, below.and_then(|b| b.bitrate))
    {
        let t = f64::from(src_height - b.height) / f64::from(next.height - b.height);
        own.bitrate =
            Some((f64::from(lower) + t * (f64::from(top) - f64::from(lower))).round() as u32);
    }
    notices.push(match kept.first() {
        Some(_) => format!(
            "a rung at the source's own height ({src_height} lines) takes the place of rung {}",
            next.name
        ),
        None => format!(
            "rung {} encoded at the source height {src_height}",
            next.name
        ),
    });
    out.insert(0, own);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heights(rungs: &[Rung]) -> Vec<(u32, Option<u32>)> {
        rungs.iter().map(|r| (r.height, r.bitrate)).collect()
    }

    /// A 2.35:1 title 270 lines high between the built-in ladders' 240 and 360 rungs gets a
    /// top rung of its own height (issue 17: the AV1 ladder gave one 240p rung).
    #[test]
    fn a_source_between_two_rungs_gets_its_own_height() {
        let mut notes = Vec::new();
        let av1 = Ladder::builtin("av1").unwrap();
        let r = rungs_for_source(&av1.rungs, 270, &mut notes);
        assert_eq!(heights(&r), [(270, None), (240, None)]);
        assert_eq!(r[0].quality, av1.rungs[0].quality);
        assert_eq!(r[0].name, "");
        assert!(
            notes.iter().any(|n| n.contains("own height (270 lines)")),
            "{notes:?}"
        );
        // H.264: the bitrate lies between its neighbours' by height.
        let h264 = Ladder::builtin("h264").unwrap();
        let r = rungs_for_source(&h264.rungs, 300, &mut notes);
        assert_eq!(heights(&r), [(300, Some(525)), (240, Some(350))]);
        // The fixed ladder's 234 rung under a 272-line source, the 360 one (365k) above.
        let fixed = Ladder::builtin("fixed").unwrap();
        let r = rungs_for_source(&fixed.rungs, 272, &mut notes);
        assert_eq!(heights(&r), [(272, Some(211)), (234, Some(145))]);
    }

    /// Tiles keep the picture as shown: square pixels, anamorphic, and a phone's portrait
    /// video (coded landscape, turned a quarter), whose frames reach the scaler upright.
    #[test]
    fn thumbnails_keep_the_upright_display_aspect() {
        let video = |w: u32, h: u32, par: Rational, rotation: u32| crate::VideoStream {
            index: 0,
            codec: String::new(),
            media_type: String::new(),
            width: w,
            height: h,
            frame_rate: Rational::new(25, 1),
            pixel_aspect: par,
            pixel_format: None,
            bit_depth: None,
            colorimetry: None,
            color: None,
            interlaced: false,
            bitrate: None,
            rotation,
        };
        let fps = Rational::new(25, 1);
        let size = |v: crate::VideoStream| {
            let p = ThumbnailPlan::new(&v, fps, 5.0, 320);
            (p.width, p.height, p.every_frames)
        };
        assert_eq!(
            size(video(1280, 720, Rational::new(1, 1), 0)),
            (320, 180, 125)
        );
        // PAL 16:9 anamorphic: 720x576 shown at 1024x576.
        assert_eq!(
            size(video(720, 576, Rational::new(64, 45), 0)),
            (320, 180, 125)
        );
        assert_eq!(
            size(video(1920, 1080, Rational::new(1, 1), 90)),
            (320, 568, 125)
        );
        // At least a frame apart.
        let p = ThumbnailPlan::new(&video(640, 360, Rational::new(1, 1), 0), fps, 0.01, 320);
        assert_eq!(p.every_frames, 1);
        assert!(p.takes(0) && p.takes(1));
    }

    #[test]
    fn a_source_at_or_near_a_rung_gets_no_extra_rung() {
        let mut notes = Vec::new();
        let h264 = Ladder::builtin("h264").unwrap();
        let r = rungs_for_source(&h264.rungs, 720, &mut notes);
        assert_eq!(
            r.iter().map(|r| r.height).collect::<Vec<_>>(),
            [720, 480, 360, 240]
        );
        let r = rungs_for_source(&h264.rungs, 250, &mut notes);
        assert_eq!(r.iter().map(|r| r.height).collect::<Vec<_>>(), [240]);
        let r = rungs_for_source(&h264.rungs, 1080, &mut notes);
        assert_eq!(r.len(), 5);
    }

    #[test]
    fn a_source_below_every_rung_gets_the_smallest_at_its_height() {
        let mut notes = Vec::new();
        let h264 = Ladder::builtin("h264").unwrap();
        let r = rungs_for_source(&h264.rungs, 180, &mut notes);
        assert_eq!(heights(&r), [(180, Some(350))]);
        assert!(notes
            .last()
            .unwrap()
            .contains("encoded at the source height 180"));
    }
}
