//! Text tracks (WebVTT subtitles and captions), packaged after the media on the reference
//! video's segment boundaries: segment N of the text covers exactly segment N of the video,
//! so players fetch them together. Each segment is written twice: as CMAF (`wvtt` or `stpp`
//! samples, `TRACK/N.m4s`, for DASH; in a single-file package all in `TRACK.mp4` behind its
//! init segment and a `sidx`) and as a WebVTT file (`TRACK/N.vtt`, for HLS, whose players
//! read text segments as WebVTT files, in either mode). Text is never encrypted.

use crate::package::{io, write_atomically, Addressing, PackagedTrack, SegmentRecord};
use crate::{init_segment, media_fragment, InitOptions, PackagerError, Result};
use reel_media::{EncodedSample, TextTrackInfo, TrackInfo, TrackKind};
use std::path::Path;

/// One text segment's contents, for the span `[start, start + duration)` of the video's
/// segment of the same number (in the text track's timescale).
pub struct TextSegment {
    /// `wvtt` samples tiling the span.
    pub samples: Vec<EncodedSample>,
    /// The same cues as a WebVTT file, for HLS.
    pub webvtt: String,
}

/// Writes `info`'s text track into `dir` (folder `text_LANGUAGE_KIND`) on the segment
/// boundaries of `reference` (a packaged video track; the text track takes its timescale),
/// asking `segment(start, end)` for each segment's contents, addressed as `reference` is.
pub fn write_text_track(
    dir: &Path,
    reference: &PackagedTrack,
    mut info: TrackInfo,
    text: TextTrackInfo,
    segment: &mut dyn FnMut(i64, i64) -> TextSegment,
) -> Result<PackagedTrack> {
    let invalid = |problem: String| PackagerError::InvalidTrack {
        track: info.id,
        problem,
    };
    if info.kind() != TrackKind::Text {
        return Err(invalid("not a text track".into()));
    }
    if reference.segments.is_empty() {
        return Err(invalid(format!(
            "the video track {} has no segments",
            reference.stem
        )));
    }
    info.timescale = reference.timescale();
    let stem = crate::safe_file_name(&format!("text_{}_{}", text.language, text.kind.name()));
    // Thousands of small files: written plainly into a staging folder that takes the track's
    // name once complete (one rename, not one per file; a folder left half-written keeps its
    // staging name).
    let folder = dir.join(&stem);
    let staging = dir.join(format!(".{stem}.partial"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let write = |name: String, data: &[u8]| {
        let path = staging.join(name);
        std::fs::write(&path, data).map_err(io(&path))
    };
    let mut file_info = info.clone();
    file_info.id = 1;
    let single = reference.addressing == Addressing::SingleFile;
    // Single-file mode: the fragments, in order (a text track is small: some hundred bytes a
    // segment), put behind the init segment and the sidx once their sizes are known.
    let mut fragments: Vec<u8> = Vec::new();
    let mut segments = Vec::with_capacity(reference.segments.len());
    for (i, video) in reference.segments.iter().enumerate() {
        let (start, end) = (video.start, video.start + video.duration as i64);
        let contents = segment(start, end);
        let covered: i64 = contents.samples.iter().map(|s| i64::from(s.duration)).sum();
        if contents.samples.first().map(|s| s.pts) != Some(start) || covered != end - start {
            return Err(invalid(format!(
                "text segment {} does not cover the video segment {start}-{end}",
                i + 1
            )));
        }
        let fragment = media_fragment(&file_info, i as u32 + 1, &contents.samples, 0, true)?;
        let offset = fragments.len() as u64;
        if single {
            fragments.extend_from_slice(&fragment);
        } else {
            write(format!("{}.m4s", video.number), &fragment)?;
        }
        write(format!("{}.vtt", video.number), contents.webvtt.as_bytes())?;
        segments.push(SegmentRecord {
            number: video.number,
            start,
            duration: video.duration,
            offset,
            size: fragment.len() as u64,
            iframes: Vec::new(),
        });
    }
    let init = init_segment(&file_info, &InitOptions::default())?;
    let mut index_size = 0;
    if single {
        let sidx = crate::package::sidx(&file_info, &segments, 0)?;
        index_size = sidx.len() as u64;
        let head = init.len() as u64 + index_size;
        for s in &mut segments {
            s.offset += head;
        }
        let mut file = Vec::with_capacity(head as usize + fragments.len());
        file.extend_from_slice(&init);
        file.extend_from_slice(&sidx);
        file.extend_from_slice(&fragments);
        write_atomically(&dir.join(format!("{stem}.mp4")), &file)?;
    } else {
        write("init.mp4".into(), &init)?;
    }
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(io(&folder))?;
    }
    std::fs::rename(&staging, &folder).map_err(io(&folder))?;
    Ok(PackagedTrack {
        info,
        stem,
        addressing: reference.addressing,
        init_size: init.len() as u64,
        index_size,
        segments,
        protection: None,
        text: Some(text),
        trick_of: None,
    })
}
