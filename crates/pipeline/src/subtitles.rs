//! Subtitle and caption sidecars into a package: each file read and checked once
//! (`reel_text`), trimmed to the video, and written as a text track on the video's segment
//! boundaries before the manifests list it.

use crate::PipelineError;
use rayon::prelude::*;
use reel_media::{CodecConfig, EncodedSample, TextKind, TextTrackInfo, TrackInfo, TrackKind};
use reel_packager::{PackagedTrack, TextSegment};
use reel_text::{hls, imsc1, wvtt, Language};
use std::path::{Path, PathBuf};

/// A subtitle file to package: `LANGUAGE[,KIND[,NAME]]=FILE` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleInput {
    pub path: PathBuf,
    /// Checked against the registry once, here at the edge.
    pub language: Language,
    pub kind: TextKind,
    /// What players show in their menus; the language's name (and kind) when not given.
    pub name: Option<String>,
    /// The form of its DASH track (the package's setting: `dash_text`).
    pub dash_text: DashText,
}

/// The form of DASH text tracks; HLS always gets WebVTT segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DashText {
    /// The form the input came in, as Shaka Packager keeps it: TTML as IMSC1, the rest (and
    /// a media file's text track) as WebVTT.
    #[default]
    Source,
    /// CMAF WebVTT (`wvtt`), what dash.js and shaka-player read on every device.
    Webvtt,
    /// CMAF IMSC1 text profile (`stpp`), what HbbTV and many smart TVs ask for.
    Imsc1,
}

impl std::str::FromStr for DashText {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "source" => Ok(DashText::Source),
            "webvtt" => Ok(DashText::Webvtt),
            "imsc1" => Ok(DashText::Imsc1),
            other => Err(format!("'{other}' is not source, webvtt or imsc1")),
        }
    }
}

impl std::str::FromStr for SubtitleInput {
    type Err = String;

    /// `en=subs/en.vtt`, `en,captions=en-sdh.srt`, `fr,forced,Français (forcé)=fr.vtt`.
    fn from_str(text: &str) -> Result<Self, String> {
        let file = crate::tagged_file::TaggedFile::parse(
            text,
            "LANGUAGE[,KIND[,NAME]]=FILE, e.g. en,captions=en.srt",
        )?;
        let kind = match file.what {
            None => TextKind::Subtitles,
            Some(k) => TextKind::from_name(k).ok_or_else(|| {
                format!("'{text}': kind '{k}' is not subtitles, captions or forced")
            })?,
        };
        Ok(SubtitleInput {
            path: file.path,
            language: file.language,
            kind,
            name: file.name,
            dash_text: DashText::default(),
        })
    }
}

/// A subtitle input, read: its cues and the warnings reading them gave, not yet trimmed to
/// the video.
pub(crate) struct ReadSubtitles {
    input: SubtitleInput,
    subs: reel_text::Subtitles,
}

/// Reads every input (side by side), before anything is encoded or packaged, so that a bad
/// file fails the run at once, naming the file and line; refuses a second track of one
/// language and kind.
pub(crate) fn read_subtitles(
    inputs: &[SubtitleInput],
) -> Result<Vec<ReadSubtitles>, PipelineError> {
    for (i, input) in inputs.iter().enumerate() {
        let earlier = inputs[..i]
            .iter()
            .map(|p| (p.language.tag.as_str(), p.kind));
        refuse_second_track(earlier, input)?;
    }
    inputs
        .par_iter()
        .map(|input| {
            let subs = if is_media_file(&input.path) {
                from_media_file(input)?
            } else {
                reel_text::read(&input.path).map_err(text_error)?
            };
            Ok(ReadSubtitles {
                input: input.clone(),
                subs,
            })
        })
        .collect()
}

/// Writes each of `subtitles` into `out` as a text track on the segments of the package's
/// first video track, appending the packaged tracks to `tracks`. Warnings (cues out of order,
/// overlapping, past the video's end) go to `on_notice`.
pub(crate) fn add_subtitles(
    out: &Path,
    tracks: &mut Vec<PackagedTrack>,
    subtitles: Vec<ReadSubtitles>,
    on_notice: &mut dyn FnMut(String),
) -> Result<(), PipelineError> {
    if subtitles.is_empty() {
        return Ok(());
    }
    let reference = tracks
        .iter()
        .find(|t| t.info.kind() == TrackKind::Video)
        .cloned()
        .ok_or_else(|| {
            PipelineError::Unsupported("subtitles need a video track to follow".into())
        })?;
    // Each language is its own track: they are written side by side. A 2-hour title has 3,600
    // 2-s segments and so 7,200 text files per language, whose creation is most of the time.
    let first_id = tracks.iter().map(|t| t.info.id).max().unwrap_or(0) + 1;
    let written = subtitles
        .into_par_iter()
        .enumerate()
        .map(|(i, read)| {
            let mut notices = Vec::new();
            let id = first_id + i as u32;
            let track = text_track(out, &reference, id, read, &mut |n| notices.push(n))?;
            Ok((track, notices))
        })
        .collect::<Result<Vec<_>, PipelineError>>()?;
    for (track, notices) in written {
        notices.into_iter().for_each(&mut *on_notice);
        tracks.push(track);
    }
    Ok(())
}

/// One track per language and kind: players could not tell two apart.
fn refuse_second_track<'a>(
    mut earlier: impl Iterator<Item = (&'a str, TextKind)>,
    input: &SubtitleInput,
) -> Result<(), PipelineError> {
    if earlier.any(|(language, kind)| language == input.language.tag && kind == input.kind) {
        return Err(PipelineError::Unsupported(format!(
            "{}: a second {} track in '{}'; give each language and kind one file",
            input.path.display(),
            input.kind.name(),
            input.language.tag
        )));
    }
    Ok(())
}

/// Trims `read` to the video and writes it as track `id` on `reference`'s segments.
fn text_track(
    out: &Path,
    reference: &PackagedTrack,
    id: u32,
    read: ReadSubtitles,
    on_notice: &mut dyn FnMut(String),
) -> Result<PackagedTrack, PipelineError> {
    let ReadSubtitles { input, mut subs } = read;
    let timescale = reference.timescale();
    let video_end = reference
        .segments
        .last()
        .map_or(0, |s| ticks_to_ms(s.start + s.duration as i64, timescale));
    let language = &input.language;
    let media_file = is_media_file(&input.path);
    subs.trim_to(video_end);
    for w in subs.warnings.drain(..) {
        on_notice(w);
    }
    // IMSC1 documents (`stpp`) or WebVTT cues (`wvtt`) for DASH; HLS takes WebVTT either way.
    let imsc1 = match input.dash_text {
        DashText::Imsc1 => true,
        DashText::Webvtt => false,
        DashText::Source => {
            !media_file
                && reel_text::Format::of(&input.path).map_err(text_error)?
                    == reel_text::Format::Ttml
        }
    };
    let info = TrackInfo {
        id,
        config: if imsc1 {
            CodecConfig::Imsc1
        } else {
            CodecConfig::WebVtt(wvtt::CONFIG.into())
        },
        timescale,
        video: None,
        audio: None,
        language: language.iso639_2.clone(),
        name: input
            .name
            .clone()
            .unwrap_or_else(|| default_name(language, input.kind)),
        title: None,
    };
    let text = TextTrackInfo {
        language: language.tag.clone(),
        kind: input.kind,
    };
    let (timeline, tag) = (
        reel_text::CueTimeline::new(subs.cues),
        text.language.clone(),
    );
    let mut segment = |start: i64, end: i64| {
        let (from, to) = (ticks_to_ms(start, timescale), ticks_to_ms(end, timescale));
        // The cues near the segment (a millisecond either side covers the rounding of ticks).
        let cues = timeline.around(from.saturating_sub(1), to + 1);
        let samples = if imsc1 {
            // One document for the whole segment.
            vec![EncodedSample {
                data: imsc1::document(cues, from, to, &tag).into_bytes(),
                dts: start,
                pts: start,
                duration: (end - start) as u32,
                sync: true,
            }]
        } else {
            wvtt::segment_samples(cues, start, end, timescale)
        };
        TextSegment {
            samples,
            webvtt: hls::segment(cues, from, to),
        }
    };
    Ok(reel_packager::write_text_track(
        out,
        reference,
        info,
        text,
        &mut segment,
    )?)
}

/// A media file (the mezzanine, or any MP4 or Matroska file) whose text track is the input.
fn is_media_file(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("mp4" | "m4v" | "mov" | "mkv" | "webm"))
}

/// The text track of a media file in `input`'s language (or its only text track), as
/// subtitles: MP4 `tx3g`/mov_text and Matroska SubRip, read by GStreamer's demuxers.
fn from_media_file(input: &SubtitleInput) -> Result<reel_text::Subtitles, PipelineError> {
    let path = &input.path;
    let tracks = reel_encoder::text_tracks(path)?;
    let wanted = &input.language.iso639_2;
    let matching: Vec<&reel_encoder::SourceText> = tracks
        .iter()
        .filter(|t| {
            t.language
                .as_deref()
                .and_then(reel_media::language::iso639_2t)
                .is_some_and(|l| &l == wanted)
        })
        .collect();
    let track = match (matching.as_slice(), tracks.as_slice()) {
        ([one, ..], _) => *one,
        ([], [only]) => only,
        ([], []) => {
            return Err(PipelineError::Unsupported(format!(
                "{}: has no text track (tx3g/mov_text or SubRip) to take subtitles from",
                path.display()
            )))
        }
        ([], all) => {
            let languages: Vec<&str> = all
                .iter()
                .map(|t| t.language.as_deref().unwrap_or("und"))
                .collect();
            return Err(PipelineError::Unsupported(format!(
                "{}: none of its {} text tracks is in '{}' (they are in {})",
                path.display(),
                all.len(),
                input.language.tag,
                languages.join(", ")
            )));
        }
    };
    let samples = track
        .samples
        .iter()
        .map(|s| (s.start, s.start + s.duration, s.data.clone()));
    Ok(reel_text::from_samples(
        path,
        samples,
        track.format,
        track.header.as_deref(),
    ))
}

fn text_error(e: reel_text::TextError) -> PipelineError {
    PipelineError::Unsupported(e.to_string())
}

fn ticks_to_ms(ticks: i64, timescale: u32) -> u64 {
    (ticks.max(0) as u128 * 1000 / u128::from(timescale.max(1))) as u64
}

/// `English`, `English (captions)`, `English (forced)`, with the region when the tag has one.
fn default_name(language: &Language, kind: TextKind) -> String {
    let label =
        reel_media::language::english_name(&language.tag).unwrap_or_else(|| language.tag.clone());
    match kind {
        TextKind::Subtitles => label,
        kind => format!("{label} [{}]", kind.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_at_the_edge() {
        let s: SubtitleInput = "pt-br,captions,Português=subs/pt.srt".parse().unwrap();
        assert_eq!(s.language.tag, "pt-BR");
        assert_eq!(s.kind, TextKind::Captions);
        assert_eq!(s.name.as_deref(), Some("Português"));
        assert_eq!(s.path, PathBuf::from("subs/pt.srt"));
        let s: SubtitleInput = "en=a=b.vtt".parse().unwrap();
        assert_eq!(
            (s.kind, s.path),
            (TextKind::Subtitles, PathBuf::from("a=b.vtt"))
        );
        for (bad, says) in [
            ("en.vtt", "expected LANGUAGE"),
            ("xx=a.vtt", "language 'xx'"),
            ("en,sdh=a.vtt", "kind 'sdh'"),
            ("en=", "no file"),
        ] {
            let err = bad.parse::<SubtitleInput>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn default_names() {
        let l = Language::parse("pt-BR").unwrap();
        assert_eq!(default_name(&l, TextKind::Subtitles), "Portuguese (BR)");
        let l = Language::parse("en").unwrap();
        assert_eq!(default_name(&l, TextKind::Captions), "English [captions]");
    }
}
