//! CMAF packaging: segments aligned across tracks, written as one file per segment or as one
//! file per track with a `sidx`, plus the figures the manifests need.

use crate::boxes::{write_full_box, Put};
use crate::{init_segment, InitOptions, PackagerError, Result};
use reel_media::{CodecConfig, EncodedSample, TrackInfo, TrackKind};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How media segments are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `TRACK/init.mp4` and `TRACK/N.m4s` (DASH `$Number$` templates, HLS one URI a segment).
    SegmentFiles,
    /// `TRACK.mp4`: init, `sidx`, then every segment (DASH `SegmentBase`, HLS byte ranges).
    SingleFile,
}

/// The segment duration when none is asked for, in seconds.
pub const DEFAULT_SEGMENT_SECONDS: f64 = 4.0;

/// Checks a target segment duration: 0.5-60 s.
pub fn check_segment_duration(seconds: f64) -> std::result::Result<(), String> {
    if (0.5..=60.0).contains(&seconds) {
        Ok(())
    } else {
        Err(format!("segment duration {seconds} s is outside 0.5-60 s"))
    }
}

/// Packaging choices.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// Target segment duration in seconds; video segments start on sync samples at or after it.
    pub segment_duration: f64,
    pub addressing: Addressing,
    /// The title's expected duration in seconds, when known (from a probe). In single-file
    /// mode it lets the packager reserve room for the `sidx` in front of the media and write
    /// each track once; without it (or if the title turns out longer) the media is copied
    /// behind the `sidx` at the end.
    pub expected_duration: Option<f64>,
    /// Common Encryption of every track, when set.
    pub protection: Option<crate::Protection>,
    /// Told of each segment file (path, track, kind) the moment it is complete (segment-file addressing),
    /// for a caller that publishes segments while the rest are still being made.
    pub segment_written: Option<std::sync::mpsc::Sender<crate::WrittenSegment>>,
    /// The name of the video track whose key frames also make a trick-play track (key frames
    /// only, each shown until the next: `NAME_trick`), for DASH fast forward and rewind.
    pub trick_play: Option<String>,
}

impl Default for PackageOptions {
    fn default() -> Self {
        Self {
            segment_duration: DEFAULT_SEGMENT_SECONDS,
            addressing: Addressing::SegmentFiles,
            expected_duration: None,
            protection: None,
            segment_written: None,
            trick_play: None,
        }
    }
}

/// One written media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    /// 1-based segment number (the `$Number$` of its file).
    pub number: u32,
    /// Earliest presentation time, in the track's timescale.
    pub start: i64,
    pub duration: u64,
    /// Offset in the track's single file (0 in segment-file mode).
    pub offset: u64,
    pub size: u64,
    /// Sync samples in this segment: (presentation time, offset of their fragment, bytes from
    /// the fragment start to the end of the sync sample), for I-frame playlists.
    pub iframes: Vec<(i64, u64, u64)>,
}

/// A packaged track: where its files are and what its segments are.
#[derive(Debug, Clone)]
pub struct PackagedTrack {
    pub info: TrackInfo,
    /// Folder or file stem of the track, relative to the output folder.
    pub stem: String,
    pub addressing: Addressing,
    pub init_size: u64,
    /// `sidx` size (single-file mode).
    pub index_size: u64,
    pub segments: Vec<SegmentRecord>,
    /// Key ID, scheme and DRM signalling when the track is encrypted.
    pub protection: Option<crate::TrackProtection>,
    /// Language tag and kind of a text track (see [`crate::write_text_track`]).
    pub text: Option<reel_media::TextTrackInfo>,
    /// A trick-play track: the stem of the video track whose key frames it holds.
    pub trick_of: Option<String>,
}

impl PackagedTrack {
    pub fn timescale(&self) -> u32 {
        self.info.timescale
    }

    /// Exact duration in seconds from the first presentation time to the end of the last sample.
    pub fn duration_secs(&self) -> f64 {
        let total: u64 = self.segments.iter().map(|s| s.duration).sum();
        total as f64 / f64::from(self.info.timescale)
    }

    /// Peak bitrate over any one segment, bits per second.
    pub fn peak_bandwidth(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                let secs = s.duration.max(1) as f64 / f64::from(self.info.timescale);
                (s.size as f64 * 8.0 / secs).ceil() as u64
            })
            .max()
            .unwrap_or(0)
    }

    /// Average bitrate over the whole track, bits per second.
    pub fn average_bandwidth(&self) -> u64 {
        let bytes: u64 = self.segments.iter().map(|s| s.size).sum();
        let secs = self.duration_secs();
        if secs > 0.0 {
            (bytes as f64 * 8.0 / secs).ceil() as u64
        } else {
            0
        }
    }

    /// Longest segment in seconds.
    pub fn max_segment_secs(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).max().unwrap_or(0) as f64
            / f64::from(self.info.timescale)
    }

    pub fn init_uri(&self) -> String {
        match self.addressing {
            Addressing::SegmentFiles => format!("{}/init.mp4", self.stem),
            Addressing::SingleFile => format!("{}.mp4", self.stem),
        }
    }

    pub fn segment_uri(&self, number: u32) -> String {
        match self.addressing {
            Addressing::SegmentFiles => format!("{}/{number}.m4s", self.stem),
            Addressing::SingleFile => format!("{}.mp4", self.stem),
        }
    }
}

struct Track {
    info: TrackInfo,
    /// `info` as written in the track's files: every file holds one track, as track 1.
    file_info: TrackInfo,
    stem: String,
    /// Single-file mode: the track's file (written by the writer thread); segment-file mode:
    /// the track's folder.
    out_path: PathBuf,
    /// Single-file mode: bytes kept free at the head of `out_path` for init and `sidx`
    /// (0 when fragments go to a scratch file), and how many `sidx` entries fit.
    reserved: u64,
    reserved_entries: u64,
    /// Samples of the segment being built, and the fragments (GOPs) within it.
    current: Vec<EncodedSample>,
    /// Audio samples that may belong to the next segment once the reference video decides.
    undecided: std::collections::VecDeque<EncodedSample>,
    segment_start: Option<i64>,
    segments: Vec<SegmentRecord>,
    written: u64,
    dts_origin: Option<i64>,
    last_dts: Option<i64>,
    end_pts: i64,
    sample_index: u64,
    fragment_seq: u32,
    /// Segment boundaries (presentation times) this track chose, video only.
    boundaries: Vec<i64>,
    ended: bool,
    encryptor: Option<reel_drm::TrackEncryptor>,
    /// Samples already written to segments (for error messages).
    samples_out: u64,
    protection: Option<crate::TrackProtection>,
    /// On a video track with a trick-play track: that track's id, and the last key frame,
    /// held until the next one says how long it is shown.
    trick: Option<(u32, Option<EncodedSample>)>,
    /// On a trick-play track: its source's stem.
    trick_of: Option<String>,
    /// The first key frame was looked at for HDR metadata.
    hdr_checked: bool,
}

impl Track {
    /// Takes an AV1 stream's HDR static metadata from `sample` (a key frame) into the track's
    /// description, unless the track has it already.
    fn take_hdr_metadata(&mut self, sample: &[u8]) {
        if !matches!(self.info.config, CodecConfig::Av1(_)) {
            return;
        }
        let Some(v) = self.info.video.as_mut().filter(|v| v.hdr.is_none()) else {
            return;
        };
        // A key frame whose OBUs do not parse fails later, where samples are checked.
        if let Ok(Some(hdr)) = reel_media::av1::hdr_metadata(sample) {
            v.hdr = Some(hdr);
            if let Some(f) = self.file_info.video.as_mut() {
                f.hdr = Some(hdr);
            }
        }
    }
}

/// Packages tracks as samples arrive. Manifests are written by the caller from
/// [`finish`](Packager::finish)'s result, after every segment is in place.
pub struct Packager {
    dir: PathBuf,
    opts: PackageOptions,
    tracks: Vec<Track>,
    /// Index of the video track whose boundaries the audio tracks follow.
    reference: Option<usize>,
    /// Writes finished segments while the next ones are built.
    writer: crate::writer::Writer,
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> PackagerError + '_ {
    move |source| PackagerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` to `path` through a temporary name, so a reader never sees half a file.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = crate::file::partial_path(path);
    std::fs::write(&tmp, data).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Trick-play tracks take their source's id with this bit set.
const TRICK_ID_BASE: u32 = 0x4000_0000;

impl Packager {
    pub fn new(dir: &Path, opts: PackageOptions) -> Result<Self> {
        check_segment_duration(opts.segment_duration)
            .map_err(|problem| PackagerError::InvalidTrack { track: 0, problem })?;
        if let Some(p) = &opts.protection {
            p.check()?;
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let writer = crate::writer::Writer::start(opts.segment_written.clone());
        Ok(Self {
            dir: dir.to_path_buf(),
            opts,
            tracks: Vec::new(),
            reference: None,
            writer,
        })
    }

    /// Registers a track; its init segment is written when the track finishes. The track
    /// [`PackageOptions::trick_play`] names brings its trick-play track with it.
    pub fn add_track(&mut self, info: TrackInfo) -> Result<()> {
        let trick = info.kind() == TrackKind::Video
            && self.opts.trick_play.as_deref() == Some(crate::safe_file_name(&info.name).as_str());
        let trick_info = trick.then(|| {
            let mut t = info.clone();
            t.id = TRICK_ID_BASE | info.id;
            t.name = format!("{}_trick", info.name);
            t
        });
        self.add_one_track(info)?;
        if let Some(t) = trick_info {
            let (source, id) = (self.tracks.len() - 1, t.id);
            self.add_one_track(t)?;
            // The source's stem as added (made unique when a name was taken).
            let stem = self.tracks[source].stem.clone();
            self.tracks[source].trick = Some((id, None));
            self.tracks.last_mut().expect("just added").trick_of = Some(stem);
        }
        Ok(())
    }

    fn add_one_track(&mut self, info: TrackInfo) -> Result<()> {
        if info.kind() == TrackKind::Text {
            return Err(PackagerError::InvalidTrack {
                track: info.id,
                problem: "text tracks follow the video's segments: use write_text_track after \
                          finish"
                    .into(),
            });
        }
        if self.tracks.iter().any(|t| t.info.id == info.id) {
            return Err(PackagerError::InvalidTrack {
                track: info.id,
                problem: "track id used twice".into(),
            });
        }
        let base = crate::safe_file_name(&info.name);
        let mut stem = if base.is_empty() {
            format!("track{}", info.id)
        } else {
            base
        };
        if self.tracks.iter().any(|t| t.stem == stem) {
            stem = format!("{stem}_{}", info.id);
        }
        let (encryptor, protection) = match &self.opts.protection {
            Some(p) => {
                let (e, t) = crate::protect::protect_track(p, &info)?;
                (Some(e), Some(t))
            }
            None => (None, None),
        };
        // Fail early on a track the init segment cannot describe; the real one is written at
        // the end, when its btrt bitrates are known.
        let probe_init = init_segment(
            &info,
            &InitOptions {
                bitrate: Some((0, 0)),
                fragment_duration: None,
                protection: protection.clone(),
            },
        )?;
        let (mut reserved, mut reserved_entries) = (0, 0);
        let (out, out_path) = match self.opts.addressing {
            Addressing::SegmentFiles => {
                let d = self.dir.join(&stem);
                std::fs::create_dir_all(&d).map_err(io(&d))?;
                (None, d)
            }
            Addressing::SingleFile => match self.opts.expected_duration {
                Some(d) if d > 0.0 && d.is_finite() => {
                    // Room for init + sidx: segments are at least the target long but the
                    // last, so this many entries always fit a title of that duration.
                    let entries = (d / self.opts.segment_duration * 1.1).ceil() as u64 + 4;
                    reserved = probe_init.len() as u64 + SIDX_FIXED + SIDX_ENTRY * entries + 8;
                    reserved_entries = entries;
                    let p = crate::file::partial_path(&self.dir.join(format!("{stem}.mp4")));
                    let mut f =
                        BufWriter::with_capacity(1 << 20, File::create(&p).map_err(io(&p))?);
                    f.write_all(&vec![0; reserved as usize]).map_err(io(&p))?;
                    (Some(f), p)
                }
                _ => {
                    // Fragments go to a scratch file; finish() puts init + sidx in front.
                    let p = self.dir.join(format!(".{stem}.fragments"));
                    let f = File::create(&p).map_err(io(&p))?;
                    (Some(BufWriter::with_capacity(1 << 20, f)), p)
                }
            },
        };
        if let Some(f) = out {
            self.writer.open(self.tracks.len(), f, out_path.clone())?;
        }
        if info.kind() == TrackKind::Video && self.reference.is_none() {
            self.reference = Some(self.tracks.len());
        }
        let mut file_info = info.clone();
        file_info.id = 1;
        self.tracks.push(Track {
            file_info,
            info,
            stem,
            out_path,
            reserved,
            reserved_entries,
            current: Vec::new(),
            undecided: Default::default(),
            segment_start: None,
            segments: Vec::new(),
            written: 0,
            dts_origin: None,
            last_dts: None,
            end_pts: i64::MIN,
            sample_index: 0,
            fragment_seq: 0,
            boundaries: Vec::new(),
            ended: false,
            encryptor,
            samples_out: 0,
            protection,
            trick: None,
            trick_of: None,
            hdr_checked: false,
        });
        Ok(())
    }

    /// Hands key frame `sample` of track `i` to its trick-play track, which shows the key
    /// frame before it until this one: samples of one key frame each, decode time equal to
    /// presentation time (no reordering among key frames alone). `None` flushes the last,
    /// shown until the source's end.
    fn feed_trick(&mut self, i: usize, sample: Option<&EncodedSample>) -> Result<()> {
        let end = self.tracks[i].end_pts;
        let Some((id, held)) = self.tracks[i].trick.as_mut() else {
            return Ok(());
        };
        let id = *id;
        let next = sample.map(|s| EncodedSample {
            data: s.data.clone(),
            dts: s.pts,
            pts: s.pts,
            duration: s.duration,
            sync: true,
        });
        let previous = match next {
            Some(n) => held.replace(n),
            None => held.take(),
        };
        let Some(mut previous) = previous else {
            return Ok(());
        };
        let until = sample.map_or(end, |s| s.pts);
        previous.duration = u32::try_from(until - previous.pts)
            .ok()
            .filter(|&d| d > 0)
            .unwrap_or(previous.duration);
        self.push(id, previous)
    }

    fn index(&self, track: u32) -> Result<usize> {
        self.tracks
            .iter()
            .position(|t| t.info.id == track)
            .ok_or_else(|| PackagerError::InvalidTrack {
                track,
                problem: "sample for a track that was not added".into(),
            })
    }

    /// Adds one sample (decode order) to a track.
    pub fn push(&mut self, track: u32, sample: EncodedSample) -> Result<()> {
        let i = self.index(track)?;
        let t = &mut self.tracks[i];
        let index = t.sample_index;
        t.sample_index += 1;
        let bad = |problem: String| PackagerError::InvalidSample {
            track,
            index,
            dts: sample.dts,
            problem,
        };
        if let Some(last) = t.last_dts {
            if sample.dts <= last {
                return Err(bad(format!(
                    "decode time is not after the previous sample's ({last}): samples out of order"
                )));
            }
        }
        if sample.data.is_empty() {
            return Err(bad("empty sample".into()));
        }
        if sample.duration == 0 {
            return Err(bad("zero duration".into()));
        }
        t.last_dts = Some(sample.dts);
        t.dts_origin.get_or_insert(sample.dts.min(0));
        t.end_pts = t.end_pts.max(sample.pts + i64::from(sample.duration));
        if sample.sync && !t.hdr_checked {
            // HDR static metadata rides in an AV1 key frame's metadata OBUs; the sample
            // entry states it too (`mdcv`, `clli`) for players and tools that read only that.
            t.hdr_checked = true;
            t.take_hdr_metadata(&sample.data);
        }
        if sample.sync && t.trick.is_some() {
            self.feed_trick(i, Some(&sample))?;
        }
        let t = &mut self.tracks[i];
        let target = (self.opts.segment_duration * f64::from(t.info.timescale)).round() as i64;
        match t.info.kind() {
            TrackKind::Video => {
                let Some(start) = t.segment_start else {
                    if !sample.sync {
                        return Err(bad("the track does not start with a sync sample".into()));
                    }
                    t.segment_start = Some(sample.pts);
                    t.boundaries.push(sample.pts);
                    t.current.push(sample);
                    return self.release_audio(i);
                };
                if sample.sync && sample.pts >= start + target {
                    Self::write_segment(&self.dir, self.opts.addressing, &self.writer, i, t)?;
                    t.segment_start = Some(sample.pts);
                    t.boundaries.push(sample.pts);
                    t.current.push(sample);
                    return self.release_audio(i);
                }
                t.current.push(sample);
                Ok(())
            }
            TrackKind::Audio => {
                t.undecided.push_back(sample);
                self.settle_audio(i)
            }
            TrackKind::Text => Err(bad("text tracks are written by write_text_track".into())),
        }
    }

    /// After the reference video track chose a boundary, audio waiting on it can move.
    fn release_audio(&mut self, video: usize) -> Result<()> {
        if Some(video) != self.reference {
            return Ok(());
        }
        for i in 0..self.tracks.len() {
            if self.tracks[i].info.kind() == TrackKind::Audio
                && !self.tracks[i].undecided.is_empty()
            {
                self.settle_audio(i)?;
            }
        }
        Ok(())
    }

    /// Moves undecided audio samples into segments, cutting at the audio frame nearest to each
    /// boundary the reference video chose (or every `segment_duration` without video).
    fn settle_audio(&mut self, i: usize) -> Result<()> {
        // Only the boundaries this track has not reached yet (and the last one) matter: copy
        // those, not the whole list, on this per-sample path.
        let from = self.tracks[i].segments.len() + 1;
        let reference = self.reference.map(|r| {
            let v = &self.tracks[r];
            let ahead = v.boundaries.get(from..).unwrap_or_default().to_vec();
            (
                ahead,
                v.boundaries.last().copied(),
                v.info.timescale,
                v.ended,
            )
        });
        let dir = self.dir.clone();
        let addressing = self.opts.addressing;
        let seg_secs = self.opts.segment_duration;
        let t = &mut self.tracks[i];
        let ts = i64::from(t.info.timescale);
        let target = (seg_secs * ts as f64).round() as i64;
        while !t.undecided.is_empty() {
            let s = &t.undecided[0];
            let half = i64::from(s.duration) / 2;
            let start = *t.segment_start.get_or_insert(s.pts);
            // The next boundary after this segment's start, in this track's timescale.
            let next = match &reference {
                None => Some(start + target),
                Some((ahead, last, vts, ended)) => {
                    let vts = i64::from(*vts);
                    let to_audio =
                        |b: i64| ((i128::from(b) * i128::from(ts)) / i128::from(vts)) as i64;
                    // Audio segment i ends at the video's boundary i + 1, so both have the
                    // same number of segments whatever the timestamps do in between.
                    match ahead.get(t.segments.len() + 1 - from).map(|&b| to_audio(b)) {
                        Some(b) => Some(b),
                        None if *ended => None,
                        None => {
                            // Not decided yet. The video cuts only at or after its last boundary
                            // plus the target: a sample well before that is safe to place;
                            // otherwise (or before the video's first sample) wait for the video.
                            // From the video's boundary, not this segment's start: an audio cut
                            // lands up to half a frame after the boundary it follows.
                            let Some(last) = last else { return Ok(()) };
                            let earliest = to_audio(*last) + target;
                            if s.pts + half < earliest {
                                t.current.extend(t.undecided.pop_front());
                                continue;
                            }
                            return Ok(());
                        }
                    }
                }
            };
            let s = t.undecided.pop_front().expect("checked non-empty");
            if let Some(b) = next {
                if s.pts + half >= b && !t.current.is_empty() {
                    Self::write_segment(&dir, addressing, &self.writer, i, t)?;
                    t.segment_start = Some(s.pts);
                }
            }
            t.current.push(s);
        }
        Ok(())
    }

    /// Writes the pending samples of `t` as one segment: a fragment per GOP (video) or one
    /// fragment (audio). The bytes go to the writer thread; sizes and offsets are known here.
    fn write_segment(
        dir: &Path,
        addressing: Addressing,
        writer: &crate::writer::Writer,
        index: usize,
        t: &mut Track,
    ) -> Result<()> {
        if t.current.is_empty() {
            return Ok(());
        }
        let mut samples = std::mem::take(&mut t.current);
        let number = t.segments.len() as u32 + 1;
        // Encrypt in decode order, so that per-sample IVs count up through the track.
        let aux = match t.encryptor.as_mut() {
            Some(enc) => {
                let mut data: Vec<&mut [u8]> =
                    samples.iter_mut().map(|s| s.data.as_mut_slice()).collect();
                let aux =
                    enc.encrypt_all(&mut data)
                        .map_err(|(k, e)| PackagerError::InvalidSample {
                            track: t.info.id,
                            index: t.samples_out + k as u64,
                            dts: samples[k].dts,
                            problem: e.to_string(),
                        })?;
                Some(aux)
            }
            None => None,
        };
        t.samples_out += samples.len() as u64;
        let start = samples.iter().map(|s| s.pts).min().unwrap_or(0);
        let origin = t.dts_origin.unwrap_or(0);
        let video = t.info.kind() == TrackKind::Video;
        let (target, offset) = match addressing {
            Addressing::SegmentFiles => {
                let path = dir.join(&t.stem).join(format!("{number}.m4s"));
                let tmp = crate::file::partial_path(&path);
                (crate::writer::Target::Own { tmp, path }, 0)
            }
            Addressing::SingleFile => (crate::writer::Target::Single(index), t.written),
        };
        let mut size = 0u64;
        let mut iframes = Vec::new();
        let mut fragments = Vec::new();
        let mut from = 0;
        while from < samples.len() {
            // One fragment per GOP for video (each starts with its sync sample); one for audio.
            let mut to = from + 1;
            while video && to < samples.len() && !samples[to].sync {
                to += 1;
            }
            if !video {
                to = samples.len();
            }
            t.fragment_seq += 1;
            let part = &samples[from..to];
            let header = crate::fragment::fragment_header(
                &t.file_info,
                t.fragment_seq,
                part,
                origin,
                from == 0,
                aux.as_deref().map(|a| &a[from..to]),
            )?;
            let payload: u64 = part.iter().map(|s| s.data.len() as u64).sum();
            let n = header.len() as u64 + payload;
            if part[0].sync && video {
                // From the fragment start through the sync sample: moof, mdat header, sample.
                iframes.push((part[0].pts, size, n - payload + part[0].data.len() as u64));
            }
            size += n;
            fragments.push((header, from..to));
            from = to;
        }
        writer.write(crate::writer::Job {
            target,
            track: (t.stem.clone(), t.info.kind()),
            fragments,
            samples,
        })?;
        t.written += size;
        t.segments.push(SegmentRecord {
            number,
            start,
            duration: 0,
            offset,
            size,
            iframes,
        });
        // Durations: each segment lasts until the next one starts; the last until the end.
        let n = t.segments.len();
        if n >= 2 {
            let prev_start = t.segments[n - 2].start;
            t.segments[n - 2].duration = (start - prev_start).max(0) as u64;
        }
        Ok(())
    }

    /// Marks a track as complete.
    pub fn end_track(&mut self, track: u32) -> Result<()> {
        let i = self.index(track)?;
        if let Some((trick, _)) = self.tracks[i].trick {
            self.feed_trick(i, None)?;
            self.end_track(trick)?;
        }
        self.tracks[i].ended = true;
        if self.tracks[i].info.kind() == TrackKind::Video {
            self.release_audio(i)?;
        }
        Ok(())
    }

    /// Writes the last segments, the init segments (and `sidx` in single-file mode), checks that
    /// video tracks line up, and returns what the manifests need. Nothing here writes a manifest.
    pub fn finish(mut self) -> Result<Vec<PackagedTrack>> {
        for i in 0..self.tracks.len() {
            self.feed_trick(i, None)?;
        }
        for t in &mut self.tracks {
            t.ended = true;
        }
        // Video first, so that audio sees every boundary.
        let mut order: Vec<usize> = (0..self.tracks.len()).collect();
        order.sort_by_key(|&i| self.tracks[i].info.kind() != TrackKind::Video);
        for i in order {
            if self.tracks[i].info.kind() == TrackKind::Audio {
                self.trim_audio_to_video(i);
                self.settle_audio(i)?;
            }
            let dir = self.dir.clone();
            let t = &mut self.tracks[i];
            Self::write_segment(&dir, self.opts.addressing, &self.writer, i, t)?;
            if t.segments.is_empty() {
                return Err(PackagerError::InvalidTrack {
                    track: t.info.id,
                    problem: format!("track {} has no samples", t.info.name),
                });
            }
            let last = t.segments.last_mut().expect("checked");
            last.duration = (t.end_pts - last.start).max(0) as u64;
        }
        // Every segment is on its way; wait for the writer before init segments and indexes.
        let mut files = self.writer.finish()?;
        self.check_alignment()?;
        let mut out = Vec::new();
        let tracks = std::mem::take(&mut self.tracks);
        for (i, t) in tracks.into_iter().enumerate() {
            let file = files.get_mut(i).and_then(Option::take);
            out.push(Self::finish_track(
                &self.dir,
                self.opts.addressing,
                t,
                file,
            )?);
        }
        Ok(out)
    }

    /// Drops the audio samples of track `i` that start at or after the end of the video
    /// (a mezzanine whose audio runs on past the picture): the title ends with its video,
    /// and no audio segment lies beyond the last video one. Audio that ends early is left
    /// as it is.
    fn trim_audio_to_video(&mut self, i: usize) {
        let Some(r) = self.reference else { return };
        let (video_end, video_ts) = (self.tracks[r].end_pts, self.tracks[r].info.timescale);
        let t = &mut self.tracks[i];
        let end =
            (i128::from(video_end) * i128::from(t.info.timescale) / i128::from(video_ts)) as i64;
        let before = t.undecided.len() + t.current.len();
        t.undecided.retain(|s| s.pts < end);
        t.current.retain(|s| s.pts < end);
        if t.undecided.len() + t.current.len() < before {
            t.end_pts = t
                .undecided
                .iter()
                .chain(&t.current)
                .map(|s| s.pts + i64::from(s.duration))
                .max()
                .unwrap_or(end)
                .min(t.end_pts);
        }
    }

    fn check_alignment(&self) -> Result<()> {
        let Some(r) = self.reference else {
            return Ok(());
        };
        let reference = &self.tracks[r];
        let secs = |t: &Track| -> Vec<(i128, i128)> {
            t.segments
                .iter()
                .map(|s| (i128::from(s.start), i128::from(t.info.timescale)))
                .collect()
        };
        let want = secs(reference);
        // One switching set per video codec: its renditions must share a frame rate.
        let videos = || {
            self.tracks
                .iter()
                .filter(|t| t.info.kind() == TrackKind::Video)
        };
        for t in videos() {
            for o in videos().filter(|o| o.info.config.codec() == t.info.config.codec()) {
                let (a, b) = (
                    t.info.video.map(|v| v.frame_rate),
                    o.info.video.map(|v| v.frame_rate),
                );
                if a != b {
                    return Err(PackagerError::InvalidTrack {
                        track: t.info.id,
                        problem: format!(
                            "{}: frame rate {} differs from {} of {} in the same switching set",
                            t.info.name,
                            a.map_or("unknown".into(), |r| r.to_string()),
                            b.map_or("unknown".into(), |r| r.to_string()),
                            o.info.name
                        ),
                    });
                }
            }
        }
        for t in self
            .tracks
            .iter()
            .filter(|t| t.info.kind() == TrackKind::Video)
        {
            let got = secs(t);
            let same = got.len() == want.len()
                && got.iter().zip(&want).all(|(a, b)| a.0 * b.1 == b.0 * a.1);
            if !same {
                let at = got
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| a.0 * b.1 != b.0 * a.1)
                    .unwrap_or(got.len().min(want.len()));
                let when = |v: &[(i128, i128)]| {
                    v.get(at).map_or("none".to_string(), |x| {
                        format!("{:.3} s", x.0 as f64 / x.1 as f64)
                    })
                };
                return Err(PackagerError::InvalidTrack {
                    track: t.info.id,
                    problem: format!(
                        "{}: key frames do not line up with track {} ({}): segment {} starts at {} here and at {} there",
                        t.info.name,
                        reference.info.id,
                        reference.info.name,
                        at + 1,
                        when(&got),
                        when(&want)
                    ),
                });
            }
        }
        Ok(())
    }

    fn finish_track(
        dir: &Path,
        addressing: Addressing,
        mut t: Track,
        file: Option<BufWriter<File>>,
    ) -> Result<PackagedTrack> {
        let mut index_size = 0;
        let figures = PackagedTrack {
            info: t.info.clone(),
            stem: t.stem.clone(),
            addressing,
            init_size: 0,
            index_size: 0,
            segments: t.segments.clone(),
            protection: t.protection.clone(),
            text: None,
            trick_of: t.trick_of.clone(),
        };
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let init = init_segment(
            &t.file_info,
            &InitOptions {
                bitrate: Some((
                    clamp(figures.peak_bandwidth()),
                    clamp(figures.average_bandwidth()),
                )),
                fragment_duration: None,
                protection: t.protection.clone(),
            },
        )?;
        match addressing {
            Addressing::SegmentFiles => {
                write_atomically(&dir.join(&t.stem).join("init.mp4"), &init)?;
            }
            Addressing::SingleFile => {
                let out = file.expect("the writer returns every single file");
                let mut written = out
                    .into_inner()
                    .map_err(|e| io(&t.out_path)(e.into_error()))?;
                let path = dir.join(format!("{}.mp4", t.stem));
                let fits = t.reserved > 0 && t.segments.len() as u64 <= t.reserved_entries;
                let base = if fits {
                    // init, sidx, then a `free` box over the rest of the reserved room; the
                    // sidx's first_offset steps over that box to the first segment.
                    let sidx_len = SIDX_FIXED + SIDX_ENTRY * t.segments.len() as u64;
                    let free = t.reserved - init.len() as u64 - sidx_len;
                    let sidx = sidx(&t.file_info, &t.segments, free)?;
                    index_size = sidx.len() as u64;
                    let mut head = init.clone();
                    head.extend_from_slice(&sidx);
                    head.extend_from_slice(&(free as u32).to_be_bytes());
                    head.extend_from_slice(b"free");
                    written.seek(SeekFrom::Start(0)).map_err(io(&t.out_path))?;
                    written.write_all(&head).map_err(io(&t.out_path))?;
                    drop(written);
                    // No fsync: the rename keeps readers from a half file; durability is the
                    // publisher's job (as for cp, Shaka Packager and ffmpeg).
                    std::fs::rename(&t.out_path, &path).map_err(io(&path))?;
                    t.reserved
                } else {
                    drop(written);
                    let sidx = sidx(&t.file_info, &t.segments, 0)?;
                    index_size = sidx.len() as u64;
                    let tmp = crate::file::partial_path(&path);
                    let scratch = if t.reserved > 0 {
                        // The title was longer than expected: move the media out of the way.
                        let moved = dir.join(format!(".{}.fragments", t.stem));
                        std::fs::rename(&t.out_path, &moved).map_err(io(&moved))?;
                        moved
                    } else {
                        t.out_path.clone()
                    };
                    let mut f =
                        BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io(&tmp))?);
                    f.write_all(&init).map_err(io(&tmp))?;
                    f.write_all(&sidx).map_err(io(&tmp))?;
                    let mut frags = File::open(&scratch).map_err(io(&scratch))?;
                    frags
                        .seek(SeekFrom::Start(t.reserved))
                        .map_err(io(&scratch))?;
                    copy(&mut frags, &mut f).map_err(io(&tmp))?;
                    drop(f.into_inner().map_err(|e| io(&tmp)(e.into_error()))?);
                    std::fs::rename(&tmp, &path).map_err(io(&path))?;
                    let _ = std::fs::remove_file(&scratch);
                    init.len() as u64 + index_size
                };
                for s in &mut t.segments {
                    s.offset += base;
                    for f in &mut s.iframes {
                        f.1 += s.offset;
                    }
                }
            }
        }
        Ok(PackagedTrack {
            init_size: init.len() as u64,
            info: t.info,
            stem: t.stem,
            addressing,
            index_size,
            segments: t.segments,
            protection: t.protection,
            text: None,
            trick_of: t.trick_of,
        })
    }
}

fn copy(from: &mut File, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

/// Size of a version 1 `sidx` without entries, and of one entry.
const SIDX_FIXED: u64 = 40;
const SIDX_ENTRY: u64 = 12;

/// A version 1 `sidx` indexing every segment (ISO/IEC 14496-12 8.16.3); `first_offset` bytes
/// lie between its end and the first segment.
pub(crate) fn sidx(
    info: &TrackInfo,
    segments: &[SegmentRecord],
    first_offset: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_full_box(&mut out, b"sidx", 1, 0, |o| {
        o.u32(info.id);
        o.u32(info.timescale);
        o.u64(segments[0].start.max(0) as u64);
        o.u64(first_offset);
        o.u16(0);
        o.u16(
            u16::try_from(segments.len()).map_err(|_| PackagerError::InvalidTrack {
                track: info.id,
                problem: format!("{} segments do not fit one sidx", segments.len()),
            })?,
        );
        for s in segments {
            let size = u32::try_from(s.size)
                .ok()
                .filter(|&v| v < 1 << 31)
                .ok_or_else(|| PackagerError::InvalidTrack {
                    track: info.id,
                    problem: format!("segment {} is {} bytes", s.number, s.size),
                })?;
            o.u32(size);
            o.u32(u32::try_from(s.duration).unwrap_or(u32::MAX));
            o.u32(0x9000_0000); // starts_with_SAP = 1, SAP_type = 1
        }
        Ok(())
    })?;
    Ok(out)
}
