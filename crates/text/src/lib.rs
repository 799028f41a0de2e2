//! Subtitles and captions: sidecar files read into [`Cue`]s, checked once at the edge, and
//! written for the package as WebVTT-in-ISOBMFF samples ([`wvtt`], ISO/IEC 14496-30) or IMSC1
//! documents ([`imsc1`], `stpp` samples) for DASH and as segmented WebVTT ([`hls`]) for HLS.
//!
//! Readers follow the formats' own rules (WebVTT: W3C's parser; SRT: the de-facto SubRip
//! layout; TTML and IMSC1: W3C's timing and styling, what WebVTT can carry of it) and never
//! drop a cue silently: a cue the format cannot hold is an error naming the
//! file and the line; one that is legal but surprising (cues out of order, overlapping, past
//! the end of the video) is kept or trimmed with a warning that names them too.
//!
//! ```
//! let subs = reel_text::parse("a.srt", "1\n00:00:01,000 --> 00:00:02,500\n<i>Hello</i>\n").unwrap();
//! assert_eq!(subs.cues[0].start, 1000);
//! assert_eq!(subs.cues[0].text, "<i>Hello</i>");
//! ```

mod ass;
pub mod hls;
pub mod imsc1;
mod language;
mod srt;
mod time;
mod ttml;
mod tx3g;
mod webvtt;
pub mod wvtt;

pub use language::Language;
pub use reel_media::{SampleText, TextKind};
pub use time::{format_timestamp, parse_timestamp, Millis};

use std::path::{Path, PathBuf};

/// One cue: text shown from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    /// The cue's identifier (WebVTT) or number (SRT); may be empty.
    pub id: String,
    pub start: Millis,
    pub end: Millis,
    /// WebVTT cue settings (`line:0 align:start`), empty for the defaults.
    pub settings: String,
    /// WebVTT cue text: lines joined by `\n`, `<i>`/`<b>`/`<u>` and other WebVTT tags kept,
    /// `&`, `<` and `>` escaped where they are text.
    pub text: String,
    /// Line of the cue's timing in its file (1-based), for messages.
    pub line: usize,
}

/// Cues in start order and the longest one's length: the cues a stretch of time shows are
/// then found by two binary searches, not by reading every cue (a 2-hour title has thousands
/// of segments and thousands of cues).
#[derive(Debug, Clone)]
pub struct CueTimeline {
    cues: Vec<Cue>,
    longest: Millis,
}

impl CueTimeline {
    pub fn new(mut cues: Vec<Cue>) -> CueTimeline {
        cues.sort_by_key(|c| c.start);
        let longest = cues.iter().map(|c| c.end.saturating_sub(c.start)).max();
        CueTimeline {
            cues,
            longest: longest.unwrap_or(0),
        }
    }

    /// The cues that may be shown in `[start, end)` ms: every cue shown then is in it, in
    /// start order, with perhaps some that end before `start` (callers keep the ones they
    /// show).
    pub fn around(&self, start: Millis, end: Millis) -> &[Cue] {
        let first = self
            .cues
            .partition_point(|c| c.start.saturating_add(self.longest) <= start);
        let last = self.cues.partition_point(|c| c.start < end).max(first);
        &self.cues[first..last]
    }
}

/// A file's cues in time order, with the warnings reading it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtitles {
    pub path: PathBuf,
    pub cues: Vec<Cue>,
    /// Each names the file and the line.
    pub warnings: Vec<String>,
}

/// Errors reading subtitles; each names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {problem}")]
    Syntax {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("language '{tag}': {problem}")]
    Language { tag: String, problem: String },
}

pub type Result<T> = std::result::Result<T, TextError>;

/// Subtitle file formats read, known by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    WebVtt,
    Srt,
    Ttml,
    /// (Advanced) SubStation Alpha.
    Ass,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("vtt") | Some("webvtt") => Ok(Format::WebVtt),
            Some("srt") => Ok(Format::Srt),
            Some("ttml") | Some("dfxp") | Some("xml") => Ok(Format::Ttml),
            Some("ass") | Some("ssa") => Ok(Format::Ass),
            _ => Err(TextError::File {
                path: path.to_path_buf(),
                problem: "not a subtitle format Reel reads: name WebVTT files .vtt, SubRip \
                          files .srt, TTML/IMSC1 files .ttml, .dfxp or .xml and SubStation \
                          Alpha files .ass or .ssa"
                    .into(),
            }),
        }
    }
}

/// Reads a `.vtt`, `.srt`, TTML (`.ttml`, `.dfxp`, `.xml`) or `.ass`/`.ssa` file.
pub fn read(path: &Path) -> Result<Subtitles> {
    let format = Format::of(path)?;
    let bytes = std::fs::read(path).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = decode(path, &bytes)?;
    parse_as(path, &text, format)
}

/// Parses `text` as the format `name`'s extension says (for text already in memory).
pub fn parse(name: impl AsRef<Path>, text: &str) -> Result<Subtitles> {
    let path = name.as_ref();
    parse_as(path, text, Format::of(path)?)
}

fn parse_as(path: &Path, text: &str, format: Format) -> Result<Subtitles> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut subs = Subtitles {
        path: path.to_path_buf(),
        cues: Vec::new(),
        warnings: Vec::new(),
    };
    match format {
        Format::WebVtt => webvtt::parse(&lines, &mut subs)?,
        Format::Srt => srt::parse(&lines, &mut subs)?,
        Format::Ttml => ttml::parse(text, &mut subs)?,
        Format::Ass => ass::parse(&lines, &mut subs)?,
    }
    subs.order();
    Ok(subs)
}

/// The file's text: UTF-8 (with or without a byte-order mark) or UTF-16 with one. Anything
/// else is refused naming the line of the first byte that is not UTF-8, as a Latin-1 or
/// Windows-1252 file read as UTF-8 would show wrong letters that look like a finished job.
fn decode(path: &Path, bytes: &[u8]) -> Result<String> {
    let utf16 = |big: bool| {
        let units = bytes[2..].chunks_exact(2).map(|c| {
            if big {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<std::result::Result<String, _>>()
            .map_err(|_| TextError::File {
                path: path.to_path_buf(),
                problem: "not valid UTF-16 although it starts with a UTF-16 byte-order mark".into(),
            })
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(false),
        [0xFE, 0xFF, ..] => utf16(true),
        _ => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => {
                let good = &bytes[..e.valid_up_to()];
                let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
                let column = 1 + good.iter().rev().take_while(|&&b| b != b'\n').count();
                Err(TextError::Syntax {
                    path: path.to_path_buf(),
                    line,
                    problem: format!(
                        "byte 0x{:02X} at column {column} is not UTF-8; save the file as UTF-8 \
                         (it may be Latin-1 or Windows-1252)",
                        bytes[e.valid_up_to()]
                    ),
                })
            }
        },
    }
}

/// Text samples of a media file's text track (a `tx3g`/mov_text track of an MP4, a SubRip or
/// ASS track of a Matroska file) as subtitles: `(start, end, data)` in ms, the data as
/// `format` says; `header` is an ASS track's script header (its codec private data), whose
/// styles its blocks start from. Lines are kept, `<i>`, `<b>` and `<u>` kept (from `tx3g`
/// style records, ASS styles and `\i1` and so on; a `tx3g` track's justification and an ASS
/// alignment as settings), other tags dropped, text escaped for WebVTT. A cue's `line` is its
/// sample's number; a sample that cannot be read is a warning naming it.
pub fn from_samples(
    path: &Path,
    samples: impl IntoIterator<Item = (Millis, Millis, Vec<u8>)>,
    format: SampleText,
    header: Option<&str>,
) -> Subtitles {
    let mut subs = Subtitles {
        path: path.to_path_buf(),
        cues: Vec::new(),
        warnings: Vec::new(),
    };
    let mut styles = match (format, header) {
        (SampleText::Ass, Some(header)) => ass::Styles::of_header(header, &mut subs)
            .unwrap_or_else(|e| {
                subs.warnings.push(format!(
                    "{e} (in the ASS track's header: its styles are not used)"
                ));
                ass::Styles::default()
            }),
        _ => ass::Styles::default(),
    };
    for (i, (start, end, data)) in samples.into_iter().enumerate() {
        let utf8 = || {
            String::from_utf8_lossy(&data)
                .trim_end_matches('\0')
                .replace("\r\n", "\n")
        };
        let (text, settings) = match format {
            SampleText::PangoMarkup => (from_markup(&utf8()), String::new()),
            SampleText::Plain => (escape(&utf8()), String::new()),
            SampleText::Tx3g(defaults) => match tx3g::sample_text(&data, defaults) {
                // An empty sample is how tx3g tracks say nothing is shown.
                Ok(text) if text.is_empty() => continue,
                Ok(text) => (text, tx3g::settings(defaults).to_string()),
                Err(problem) => {
                    subs.warn(
                        i + 1,
                        format!("a tx3g sample that cannot be read: {problem}"),
                    );
                    continue;
                }
            },
            SampleText::Ass => ass::block_cue(&utf8(), &mut styles, i + 1, &mut subs),
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() || end <= start {
            subs.warn(i + 1, "an empty or zero-length text sample is not a cue");
            continue;
        }
        subs.cues.push(Cue {
            id: String::new(),
            start,
            end,
            settings,
            text: lines.join("\n"),
            line: i + 1,
        });
    }
    subs.order();
    subs
}

/// Pango markup as WebVTT cue text: `<i>`, `<b>`, `<u>` kept, other tags dropped, entities
/// read and the text escaped again for WebVTT.
fn from_markup(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len());
    let mut rest = markup;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let Some(close) = rest.find('>') else {
                    out.push_str("&lt;");
                    rest = &rest[1..];
                    continue;
                };
                let tag = rest[1..close].trim();
                let name = tag
                    .trim_start_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                if matches!(name, "i" | "b" | "u") {
                    out.push('<');
                    if tag.starts_with('/') {
                        out.push('/');
                    }
                    out.push_str(name);
                    out.push('>');
                }
                rest = &rest[close + 1..];
            }
            '&' => {
                let end = rest.find(';').filter(|&i| i <= 10);
                let decoded = end.and_then(|i| match &rest[1..i] {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    e => e
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                });
                match (decoded, end) {
                    (Some(ch), Some(i)) => {
                        out.push_str(&escape(&ch.to_string()));
                        rest = &rest[i + 1..];
                    }
                    _ => {
                        out.push_str("&amp;");
                        rest = &rest[1..];
                    }
                }
            }
            '>' => {
                out.push_str("&gt;");
                rest = &rest[1..];
            }
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

impl Subtitles {
    fn warn(&mut self, line: usize, message: impl std::fmt::Display) {
        self.warnings
            .push(format!("{}, line {line}: {message}", self.path.display()));
    }

    /// Puts cues in time order (stable), warning of each cue that was out of order and of
    /// overlapping cues (legal: players show both).
    fn order(&mut self) {
        let mut notes = Vec::new();
        let mut latest: Option<&Cue> = None;
        for cue in &self.cues {
            if let Some(prev) = latest {
                if cue.start < prev.start {
                    notes.push((
                        cue.line,
                        format!(
                            "cue at {} is before the cue at line {} ({}); cues are put in time order",
                            format_timestamp(cue.start),
                            prev.line,
                            format_timestamp(prev.start)
                        ),
                    ));
                    continue;
                }
            }
            latest = Some(cue);
        }
        for (line, note) in notes {
            self.warn(line, note);
        }
        self.cues.sort_by_key(|c| c.start);
        let mut overlaps = Vec::new();
        for pair in self.cues.windows(2) {
            if pair[1].start < pair[0].end {
                overlaps.push((
                    pair[1].line,
                    format!(
                        "cue overlaps the cue at line {} until {}; both are shown at once",
                        pair[0].line,
                        format_timestamp(pair[0].end)
                    ),
                ));
            }
        }
        for (line, note) in overlaps {
            self.warn(line, note);
        }
    }

    /// Trims the cues to a title of `duration` ms: a cue that ends later is cut at the end and
    /// one that starts at or after it is dropped, each with a warning naming its line.
    pub fn trim_to(&mut self, duration: Millis) {
        let mut notes = Vec::new();
        self.cues.retain_mut(|cue| {
            if cue.start >= duration {
                notes.push((
                    cue.line,
                    format!(
                        "cue at {} starts after the video ends ({}); left out",
                        format_timestamp(cue.start),
                        format_timestamp(duration)
                    ),
                ));
                false
            } else {
                if cue.end > duration {
                    notes.push((
                        cue.line,
                        format!(
                            "cue ends at {}, after the video ({}); cut at the end",
                            format_timestamp(cue.end),
                            format_timestamp(duration)
                        ),
                    ));
                    cue.end = duration;
                }
                true
            }
        });
        for (line, note) in notes {
            self.warn(line, note);
        }
    }
}

/// Escapes `&`, `<` and `>` for WebVTT cue text.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A cue for the tests of the writers: shown from `start` to `end` (ms), from line 1.
#[cfg(test)]
pub(crate) fn test_cue(id: &str, start: Millis, end: Millis, settings: &str, text: &str) -> Cue {
    Cue {
        id: id.into(),
        start,
        end,
        settings: settings.into(),
        text: text.into(),
        line: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timeline finds the same cues as reading every one, for every stretch.
    #[test]
    fn the_timeline_finds_every_cue_shown() {
        let cues: Vec<Cue> = [
            (0, 9000),
            (1000, 1500),
            (2000, 2500),
            (2200, 4000),
            (6000, 6100),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(s, e))| test_cue(&i.to_string(), s, e, "", "x"))
        .collect();
        let timeline = CueTimeline::new(cues.clone());
        for start in (0..10_000).step_by(250) {
            for end in [start + 1, start + 500, start + 2000] {
                let shown = |c: &&Cue| c.start < end && c.end > start;
                let want: Vec<&Cue> = cues.iter().filter(shown).collect();
                let got: Vec<&Cue> = timeline.around(start, end).iter().filter(shown).collect();
                assert_eq!(got, want, "[{start}, {end})");
            }
        }
        // Only cues that start before the stretch ends are looked at.
        assert_eq!(timeline.around(0, 1).len(), 1);
    }

    #[test]
    fn text_samples_of_media_files_become_cues() {
        let subs = from_samples(
            Path::new("m.mkv"),
            [
                (
                    3000,
                    4000,
                    "Second &amp; <font color=\"red\">last</font> &lt;3".into(),
                ),
                (1000, 2500, "<i>Hello</i> there\r\nagain".into()),
                (5000, 5000, "zero".into()),
            ],
            SampleText::PangoMarkup,
            None,
        );
        let cues: Vec<_> = subs
            .cues
            .iter()
            .map(|c| (c.start, c.end, c.text.as_str()))
            .collect();
        assert_eq!(
            cues,
            [
                (1000, 2500, "<i>Hello</i> there\nagain"),
                (3000, 4000, "Second &amp; last &lt;3")
            ]
        );
        assert_eq!(subs.warnings.len(), 2, "{:?}", subs.warnings);
        let plain = from_samples(
            Path::new("m.mp4"),
            [(0, 1, "a < b & c".into())],
            SampleText::Plain,
            None,
        );
        assert_eq!(plain.cues[0].text, "a &lt; b &amp; c");
        // An ASS track starts each block from its style in the track's header.
        let header = "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\n\
                      Format: Name, Fontname, Bold, Italic, Alignment\n\
                      Style: Default,Arial,0,0,2\nStyle: Sign,Arial,-1,0,8\n";
        let ass = from_samples(
            Path::new("m.mkv"),
            [
                (
                    0,
                    1,
                    "3,0,Default,,0,0,0,,{\\an8}{\\i1}Top{\\i0}, left".into(),
                ),
                (1, 2, "4,0,Sign,,0,0,0,,EXIT".into()),
                (2, 3, "5,0,Lost,,0,0,0,,plain".into()),
            ],
            SampleText::Ass,
            Some(header),
        );
        let cues: Vec<(&str, &str)> = ass
            .cues
            .iter()
            .map(|c| (c.text.as_str(), c.settings.as_str()))
            .collect();
        assert_eq!(
            cues,
            [
                ("<i>Top</i>, left", "line:0"),
                ("<b>EXIT</b>", "line:0"),
                ("plain", "")
            ]
        );
        assert_eq!(ass.warnings.len(), 1, "{:?}", ass.warnings);
        assert!(ass.warnings[0].contains("line 3"), "{:?}", ass.warnings);
    }

    #[test]
    fn refuses_other_encodings_naming_the_line() {
        let bytes = b"1\n00:00:01,000 --> 00:00:02,000\nCaf\xe9\n";
        let err = decode(Path::new("x.srt"), bytes).unwrap_err().to_string();
        assert!(
            err.starts_with("x.srt, line 3: byte 0xE9 at column 4"),
            "{err}"
        );
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "WEBVTT\n".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(Path::new("x.vtt"), &utf16).unwrap(), "WEBVTT\n");
        assert_eq!(
            decode(Path::new("x.vtt"), b"\xef\xbb\xbfWEBVTT").unwrap(),
            "\u{feff}WEBVTT"
        );
    }

    #[test]
    fn unordered_and_overlapping_cues_warn_and_are_kept() {
        let subs = parse(
            "o.srt",
            "1\n00:00:05,000 --> 00:00:06,000\nB\n\n2\n00:00:01,000 --> 00:00:02,000\nA\n\n\
             3\n00:00:05,500 --> 00:00:07,000\nC\n",
        )
        .unwrap();
        let starts: Vec<_> = subs.cues.iter().map(|c| c.start).collect();
        assert_eq!(starts, [1000, 5000, 5500]);
        assert_eq!(subs.warnings.len(), 2, "{:?}", subs.warnings);
        assert!(subs.warnings[0].starts_with("o.srt, line 6: cue at 00:00:01.000 is before"));
        assert!(subs.warnings[1].starts_with("o.srt, line 10: cue overlaps the cue at line 2"));
    }

    #[test]
    fn trimming_to_the_video_warns() {
        let mut subs = parse(
            "t.vtt",
            "WEBVTT\n\n00:01.000 --> 00:03.000\nA\n\n00:05.000 --> 00:06.000\nB\n",
        )
        .unwrap();
        subs.trim_to(2500);
        assert_eq!(subs.cues.len(), 1);
        assert_eq!(subs.cues[0].end, 2500);
        assert_eq!(subs.warnings.len(), 2, "{:?}", subs.warnings);
        assert!(subs.warnings[0].contains("line 3: cue ends at 00:00:03.000"));
        assert!(subs.warnings[1].contains("line 6: cue at 00:00:05.000 starts after"));
    }

    #[test]
    fn unknown_extensions_are_refused() {
        let err = read(Path::new("subs.sub")).unwrap_err().to_string();
        assert!(err.contains("subs.sub: not a subtitle format"), "{err}");
    }
}
