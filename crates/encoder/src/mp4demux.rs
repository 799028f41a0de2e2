//! A native ISO-BMFF reader for the common case of `reel package`: progressive or fragmented
//! MP4 with H.264/AV1/AAC/Opus. It reads the sample tables (or `moof`s) with the `mp4-atom`
//! parser and then the samples in file order through one large buffer, without GStreamer's
//! per-sample hand-offs. Anything it does not handle (other codecs, complex edit lists,
//! encrypted tracks) makes it step aside for the GStreamer path.

use crate::stream::{
    Event, Feed, Msg, SampleStream, Watch, BATCH_BYTES, BATCH_EVENTS, EVENT_QUEUE,
};
use crate::EncodeError;
use mp4_atom::{Atom, Codec, Encode, Header, Moof, Moov, ReadAtom, ReadFrom};
use reel_media::{
    AudioParams, AudioSpecificConfig, Av1Config, AvcConfig, CodecConfig, ColorInfo, EncodedSample,
    OpusConfig, Rational, TrackInfo, VideoParams,
};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// One sample's place in the file and its timing, in the track's timescale.
#[derive(Clone, Copy)]
struct SampleRef {
    track: usize,
    offset: u64,
    size: u32,
    dts: i64,
    cts: i64,
    duration: u32,
    sync: bool,
}

struct Parsed {
    tracks: Vec<TrackInfo>,
    samples: Vec<SampleRef>,
}

/// Starts a native demux of `path`, or returns `None` when the file is not an MP4 this reader
/// handles (the caller then uses GStreamer).
pub(crate) fn try_demux(path: &Path) -> Result<Option<SampleStream>, EncodeError> {
    let parsed = match parse(path) {
        Ok(Some(p)) => p,
        Ok(None) | Err(_) => return Ok(None),
    };
    let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let feed = Feed::new(tx);
    let stop = feed.stop.clone();
    let path = path.to_path_buf();
    let watch = Watch::new(&path, "demuxing", &feed);
    let worker = std::thread::Builder::new()
        .name("mp4-demux".into())
        .spawn(move || {
            if let Err(e) = emit(&path, parsed, &feed) {
                feed.send(Msg::Error(e));
            }
            feed.send(Msg::Done);
        })
        .expect("spawning the demux thread");
    Ok(Some(SampleStream::without_pipeline(
        rx,
        stop,
        vec![worker],
        watch,
    )))
}

/// Duration in seconds (longest track) and whether there is video, when this reader handles
/// the file; read from the sample tables, without GStreamer.
pub(crate) fn summary(path: &Path) -> Option<(f64, bool)> {
    if let Some(s) = progressive_summary(path) {
        return Some(s);
    }
    let parsed = parse(path).ok()??;
    let mut spans: Vec<Option<(i64, i64)>> = vec![None; parsed.tracks.len()];
    for s in &parsed.samples {
        let (start, end) = (s.dts + s.cts, s.dts + s.cts + i64::from(s.duration));
        let span = spans[s.track].get_or_insert((start, end));
        span.0 = span.0.min(start);
        span.1 = span.1.max(end);
    }
    let duration = spans
        .iter()
        .zip(&parsed.tracks)
        .filter_map(|(s, t)| s.map(|(a, b)| (b - a) as f64 / f64::from(t.timescale)))
        .fold(0.0, f64::max);
    let video = parsed
        .tracks
        .iter()
        .any(|t| t.kind() == reel_media::TrackKind::Video);
    Some((duration, video))
}

/// Box children of `data` as (type, body); `None` if a size field does not fit.
fn children(data: &[u8]) -> Option<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().ok()?) as usize;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().ok()?;
        let (header, size) = match size {
            0 => (8, data.len() - at),
            1 => {
                let large = u64::from_be_bytes(data.get(at + 8..at + 16)?.try_into().ok()?);
                (16, usize::try_from(large).ok()?)
            }
            n => (8, n),
        };
        if size < header || at.checked_add(size)? > data.len() {
            return None;
        }
        out.push((kind, &data[at + header..at + size]));
        at += size;
    }
    Some(out)
}

/// Duration and video presence of a progressive MP4 from `mdhd` and `hdlr` alone: reads the
/// `moov` box but decodes none of its sample tables. `None` for fragmented files (their
/// durations are in the fragments) or anything unexpected.
fn progressive_summary(path: &Path) -> Option<(f64, bool)> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut pos = 0u64;
    let mut moov = None;
    while pos + 8 <= len {
        let mut h = [0u8; 16];
        f.seek(SeekFrom::Start(pos)).ok()?;
        f.read_exact(&mut h[..8]).ok()?;
        let kind: [u8; 4] = h[4..8].try_into().ok()?;
        if pos == 0 && &kind != b"ftyp" {
            return None;
        }
        let (header, size) = match u32::from_be_bytes(h[..4].try_into().ok()?) {
            0 => (8, len - pos),
            1 => {
                f.read_exact(&mut h[8..16]).ok()?;
                (16, u64::from_be_bytes(h[8..16].try_into().ok()?))
            }
            n => (8, u64::from(n)),
        };
        if size < header || pos.checked_add(size)? > len {
            return None;
        }
        if &kind == b"moov" {
            // A moov is kilobytes to a few megabytes; refuse absurd sizes.
            let body = usize::try_from(size - header)
                .ok()
                .filter(|&n| n < 256 << 20)?;
            let mut buf = vec![0u8; body];
            f.read_exact(&mut buf).ok()?;
            moov = Some(buf);
            break;
        }
        pos += size;
    }
    let moov = moov?;
    let mut longest: f64 = 0.0;
    let mut video = false;
    for (kind, trak) in children(&moov)? {
        if &kind == b"mvex" {
            return None;
        }
        if &kind != b"trak" {
            continue;
        }
        let (_, mdia) = children(trak)?.into_iter().find(|c| &c.0 == b"mdia")?;
        let parts = children(mdia)?;
        let (_, mdhd) = parts.iter().find(|c| &c.0 == b"mdhd")?;
        let (_, hdlr) = parts.iter().find(|c| &c.0 == b"hdlr")?;
        let (timescale, duration) = if mdhd.first()? == &1 {
            (
                u32::from_be_bytes(mdhd.get(20..24)?.try_into().ok()?),
                u64::from_be_bytes(mdhd.get(24..32)?.try_into().ok()?),
            )
        } else {
            (
                u32::from_be_bytes(mdhd.get(12..16)?.try_into().ok()?),
                u64::from(u32::from_be_bytes(mdhd.get(16..20)?.try_into().ok()?)),
            )
        };
        match hdlr.get(8..12)? {
            b"vide" => video = true,
            b"soun" => {}
            _ => continue,
        }
        if timescale == 0 || duration == 0 || duration == u64::from(u32::MAX) {
            return None;
        }
        longest = longest.max(duration as f64 / f64::from(timescale));
    }
    (longest > 0.0).then_some((longest, video))
}

fn emit(path: &Path, parsed: Parsed, feed: &Feed) -> Result<(), EncodeError> {
    let io = |source| EncodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut batch = Vec::with_capacity(BATCH_EVENTS);
    let mut bytes = 0;
    let send = |batch: &mut Vec<Event>| feed.send(Msg::Batch(std::mem::take(batch)));
    for t in &parsed.tracks {
        batch.push(Event::Track(t.clone()));
    }
    // Samples are read straight into their own buffers, a run of adjacent samples (up to
    // RUN_BYTES) per vectored read: the kernel copies each sample once, with no staging buffer.
    let mut file = File::open(path).map_err(io)?;
    let mut pos = 0u64;
    let samples = &parsed.samples;
    let mut i = 0;
    while i < samples.len() {
        let start = samples[i].offset;
        let (mut end, mut j) = (start, i);
        while j < samples.len()
            && samples[j].offset == end
            && (j == i || end - start < RUN_BYTES)
            && j - i < RUN_SAMPLES
        {
            end += u64::from(samples[j].size);
            j += 1;
        }
        if start != pos {
            file.seek(SeekFrom::Start(start)).map_err(io)?;
        }
        let mut bufs: Vec<Vec<u8>> = samples[i..j]
            .iter()
            .map(|s| vec![0; s.size as usize])
            .collect();
        read_all_vectored(&mut file, &mut bufs).map_err(|e| EncodeError::Decode {
            path: path.to_path_buf(),
            detail: format!("samples at bytes {start}-{end}: {e}"),
        })?;
        pos = end;
        for (s, mut data) in samples[i..j].iter().zip(bufs) {
            let track = &parsed.tracks[s.track];
            if matches!(track.config, CodecConfig::Av1(_)) {
                data = reel_media::av1::strip_temporal_delimiters(&data).map_err(|e| {
                    EncodeError::Decode {
                        path: path.to_path_buf(),
                        detail: e.to_string(),
                    }
                })?;
            }
            bytes += data.len();
            batch.push(Event::Sample {
                track: track.id,
                sample: EncodedSample {
                    data,
                    dts: s.dts,
                    pts: s.dts + s.cts,
                    duration: s.duration,
                    sync: s.sync,
                },
            });
            if batch.len() >= BATCH_EVENTS || bytes >= BATCH_BYTES {
                bytes = 0;
                if !send(&mut batch) {
                    return Ok(());
                }
            }
        }
        i = j;
    }
    for t in &parsed.tracks {
        batch.push(Event::TrackEnd { track: t.id });
    }
    send(&mut batch);
    Ok(())
}

/// Bytes and samples read by one vectored read at most (IOV_MAX is 1024 on Linux).
const RUN_BYTES: u64 = 4 << 20;
const RUN_SAMPLES: usize = 512;

/// Fills every buffer from `file`, however the reads split; a short file is an error.
fn read_all_vectored(file: &mut File, bufs: &mut [Vec<u8>]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSliceMut> = bufs
        .iter_mut()
        .map(|b| std::io::IoSliceMut::new(b))
        .collect();
    let mut slices = slices.as_mut_slice();
    std::io::IoSliceMut::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.read_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => std::io::IoSliceMut::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the structure of the file: `Ok(None)` when this reader does not handle it.
fn parse(path: &Path) -> Result<Option<Parsed>, Box<dyn std::error::Error>> {
    let Some(Structure {
        len,
        moov,
        extras,
        moofs,
    }) = read_structure(path)?
    else {
        return Ok(None);
    };
    let moov = moov.parse()?;
    let mut tracks = Vec::new();
    let mut samples = Vec::new();
    let movie_timescale = i64::from(moov.mvhd.timescale.max(1));
    for (index, trak) in moov.trak.iter().enumerate() {
        let stbl = &trak.mdia.minf.stbl;
        let timescale = trak.mdia.mdhd.timescale.max(1);
        let Some(entry) = stbl.stsd.codecs.first() else {
            return Ok(None);
        };
        let id = tracks.len() as u32 + 1;
        let TrackExtras { language, title } = extras.get(index).cloned().unwrap_or_default();
        let language = track_language(trak, language);
        let (config, visual, pasp, colr, audio) = match entry {
            Codec::Avc1(a) => {
                let mut buf = Vec::new();
                a.avcc.encode(&mut buf)?;
                (
                    CodecConfig::Avc(AvcConfig::from_record(&buf[8..])?),
                    Some(a.visual.clone()),
                    a.pasp.clone(),
                    a.colr.clone(),
                    None,
                )
            }
            Codec::Av01(a) => (
                CodecConfig::Av1(Av1Config::from_obus(&a.av1c.config_obus)?),
                Some(a.visual.clone()),
                a.pasp.clone(),
                a.colr.clone(),
                None,
            ),
            Codec::Mp4a(a) => {
                let Some(ds) = &a.esds.es_desc.dec_config.dec_specific else {
                    return Ok(None);
                };
                let asc = AudioSpecificConfig::parse(&ds.raw)?;
                let params = AudioParams {
                    sample_rate: asc.sample_rate,
                    channels: asc.channels.max(a.audio.channel_count as u8),
                    role: audio_role(trak),
                };
                (CodecConfig::Aac(asc), None, None, None, Some(params))
            }
            Codec::Opus(o) => {
                let d = &o.dops;
                let mapping_table = match &d.channel_mapping {
                    None => Vec::new(),
                    Some(m) => {
                        let mut t = vec![m.stream_count, m.coupled_count];
                        t.extend_from_slice(&m.channel_mapping);
                        t
                    }
                };
                let cfg = OpusConfig {
                    channels: d.output_channel_count,
                    pre_skip: d.pre_skip,
                    input_sample_rate: d.input_sample_rate,
                    output_gain: d.output_gain,
                    mapping_family: d.channel_mapping.as_ref().map_or(0, |m| m.family),
                    mapping_table,
                };
                let params = AudioParams {
                    sample_rate: 48_000,
                    channels: cfg.channels,
                    role: audio_role(trak),
                };
                (CodecConfig::Opus(cfg), None, None, None, Some(params))
            }
            _ => return Ok(None),
        };
        // Timing: one edit at most (optionally after an empty one), applied as a shift.
        let Some(shift) = edit_shift(trak, movie_timescale) else {
            return Ok(None);
        };
        let before = samples.len();
        table_samples(index, stbl, shift, &mut samples)?;
        let trex = moov
            .mvex
            .as_ref()
            .and_then(|m| m.trex.iter().find(|t| t.track_id == trak.tkhd.track_id));
        for (moof_at, moof) in &moofs {
            for traf in moof
                .traf
                .iter()
                .filter(|t| t.tfhd.track_id == trak.tkhd.track_id)
            {
                let base = traf.tfhd.base_data_offset.unwrap_or(*moof_at);
                let mut dts = traf
                    .tfdt
                    .as_ref()
                    .map(|t| t.base_media_decode_time as i64)
                    .unwrap_or_else(|| {
                        samples[before..]
                            .last()
                            .map_or(0, |s| s.dts + i64::from(s.duration) - shift)
                    })
                    + shift;
                let mut offset = base;
                for trun in &traf.trun {
                    if let Some(d) = trun.data_offset {
                        offset = (base as i64 + i64::from(d)) as u64;
                    }
                    for e in trun.samples.iter() {
                        let duration = e
                            .duration
                            .or(traf.tfhd.default_sample_duration)
                            .or(trex.map(|t| t.default_sample_duration))
                            .unwrap_or(0);
                        let size = e
                            .size
                            .or(traf.tfhd.default_sample_size)
                            .or(trex.map(|t| t.default_sample_size))
                            .unwrap_or(0);
                        let flags = e
                            .flags
                            .or(traf.tfhd.default_sample_flags)
                            .or(trex.map(|t| t.default_sample_flags))
                            .unwrap_or(0);
                        samples.push(SampleRef {
                            track: index,
                            offset,
                            size,
                            dts,
                            cts: e.cts.unwrap_or(0),
                            duration,
                            sync: audio.is_some() || flags & 0x0001_0000 == 0,
                        });
                        offset += u64::from(size);
                        dts += i64::from(duration);
                    }
                }
            }
        }
        let mine = &samples[before..];
        if mine.is_empty()
            || mine
                .iter()
                .any(|s| s.size == 0 || s.offset + u64::from(s.size) > len)
        {
            return Ok(None);
        }
        let video = visual.map(|v| {
            // Constant frame rate when every sample but the last lasts the same.
            let d = mine[0].duration;
            let constant = d > 0 && mine[..mine.len() - 1].iter().all(|s| s.duration == d);
            let frame_rate = if constant {
                Rational::new(timescale, d)
            } else {
                Rational::new(0, 1)
            };
            VideoParams {
                width: u32::from(v.width),
                height: u32::from(v.height),
                frame_rate,
                pixel_aspect: pasp.map_or(Rational::new(1, 1), |p| {
                    Rational::new(p.h_spacing, p.v_spacing)
                }),
                color: colr.as_ref().and_then(color_info),
                hdr: None,
            }
        });
        tracks.push(TrackInfo {
            id,
            config,
            timescale,
            video,
            audio,
            language,
            name: format!("{}{id}", if video.is_some() { "video" } else { "audio" }),
            title,
        });
    }
    if tracks.is_empty() {
        return Ok(None);
    }
    // File order: the reads then run straight through the file.
    samples.sort_by_key(|s| s.offset);
    Ok(Some(Parsed { tracks, samples }))
}

/// The largest `tx3g` sample read (a sample is a line or two of text and its style boxes).
const MAX_TEXT_SAMPLE: u32 = 1 << 16;

/// The `tx3g` (mov_text) tracks of an MP4 as they are stored: each sample's bytes with its
/// time in ms, and what the track's sample entry gives every sample. `None` when the file is
/// not an MP4 whose sample tables this reader handles or has no `tx3g` track in them (the
/// caller then reads it with GStreamer).
pub(crate) fn tx3g_tracks(path: &Path) -> Option<Vec<crate::SourceText>> {
    let structure = read_structure(path).ok()??;
    let boxes = children(&structure.moov.0)?;
    let mvhd = boxes.iter().find(|(kind, _)| kind == b"mvhd")?.1;
    let movie_timescale = i64::from(read_body::<mp4_atom::Mvhd>(mvhd)?.timescale.max(1));
    let traks = boxes.iter().filter(|(kind, _)| kind == b"trak");
    let mut file = File::open(path).ok()?;
    let mut tracks = Vec::new();
    for (index, (_, body)) in traks.enumerate() {
        let Some((trak, defaults)) = text_trak(body) else {
            continue;
        };
        let stbl = &trak.mdia.minf.stbl;
        let mut refs = Vec::new();
        table_samples(index, stbl, edit_shift(&trak, movie_timescale)?, &mut refs).ok()?;
        let timescale = i64::from(trak.mdia.mdhd.timescale.max(1));
        let ms = |t: i64| u64::try_from(t.max(0) * 1000 / timescale).unwrap_or(0);
        let mut samples = Vec::with_capacity(refs.len());
        for r in refs {
            let fits = r.offset.checked_add(u64::from(r.size)) <= Some(structure.len);
            if !fits || r.size > MAX_TEXT_SAMPLE {
                return None;
            }
            let mut data = vec![0u8; r.size as usize];
            file.seek(SeekFrom::Start(r.offset)).ok()?;
            file.read_exact(&mut data).ok()?;
            let start = r.dts + r.cts;
            samples.push(crate::TextSample {
                start: ms(start),
                duration: ms(start + i64::from(r.duration)) - ms(start),
                data,
            });
        }
        let language = track_language(&trak, structure.extras.get(index)?.language.clone());
        tracks.push(crate::SourceText {
            language: (language != "und").then_some(language),
            format: reel_media::SampleText::Tx3g(defaults),
            header: None,
            samples,
        });
    }
    let fragmented = !structure.moofs.is_empty();
    (!tracks.is_empty() && !fragmented).then_some(tracks)
}

/// A `tx3g` track's timing and sample tables (as a `Trak` holding only those) and what its
/// sample entry gives every sample; `None` for any other track. Its boxes are read one by one,
/// not as a whole `trak`: mp4-atom refuses a `tx3g` entry with a `btrt` box in it, which
/// ffmpeg writes and ISO/IEC 14496-12 allows in every sample entry.
fn text_trak(trak: &[u8]) -> Option<(mp4_atom::Trak, reel_media::Tx3gDefaults)> {
    let mdia = child(trak, b"mdia")?;
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    let defaults = tx3g_defaults(child(stbl, b"stsd")?)?;
    let table = |fourcc: &[u8; 4]| child(stbl, fourcc);
    let elst = child(trak, b"edts").and_then(|edts| child(edts, b"elst"));
    let edts = match elst {
        Some(elst) => Some(mp4_atom::Edts {
            elst: Some(read_body(elst)?),
        }),
        None => None,
    };
    let stbl = mp4_atom::Stbl {
        stts: read_body(table(b"stts")?)?,
        stsc: read_body(table(b"stsc")?)?,
        stsz: read_body(table(b"stsz")?)?,
        ctts: table(b"ctts").and_then(read_body),
        stco: table(b"stco").and_then(read_body),
        co64: table(b"co64").and_then(read_body),
        ..Default::default()
    };
    let trak = mp4_atom::Trak {
        edts,
        mdia: mp4_atom::Mdia {
            mdhd: read_body(child(mdia, b"mdhd")?)?,
            minf: mp4_atom::Minf {
                stbl,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    Some((trak, defaults))
}

/// One box read by mp4-atom from its body.
fn read_body<T: Atom>(body: &[u8]) -> Option<T> {
    let header = Header {
        kind: T::KIND,
        size: Some(body.len()),
    };
    T::read_atom(&header, &mut std::io::Cursor::new(body)).ok()
}

/// What a `tx3g` sample entry (3GPP TS 26.245 5.16), the first in an `stsd` body, gives
/// every sample: after the sample entry's 8 bytes, `displayFlags` (4), the horizontal (1)
/// and vertical (1) justification, the background colour (4), the default text box (8), then
/// the default style record, whose seventh byte is the face. `None` for another entry.
fn tx3g_defaults(stsd: &[u8]) -> Option<reel_media::Tx3gDefaults> {
    // Version and flags, entry count, then the first entry's header.
    let entry = stsd.get(8..)?;
    if entry.get(4..8)? != b"tx3g" {
        return None;
    }
    let body = entry.get(8..)?;
    Some(reel_media::Tx3gDefaults {
        vertical_justification: *body.get(13)? as i8,
        face: *body.get(26 + 6)?,
    })
}

/// The boxes of an MP4 this reader uses: the movie, what mp4-atom does not read of its
/// tracks, and the fragments with their positions; the file's length.
struct Structure {
    len: u64,
    moov: RawMoov,
    extras: Vec<TrackExtras>,
    moofs: Vec<(u64, Moof)>,
}

/// A `moov` box's body as read (with the boxes of [`TrackExtras`] renamed `free`).
struct RawMoov(Vec<u8>);

impl RawMoov {
    /// The whole movie, as mp4-atom reads it.
    fn parse(&self) -> Result<Moov, mp4_atom::Error> {
        let header = Header {
            kind: Moov::KIND,
            size: Some(self.0.len()),
        };
        Moov::read_atom(&header, &mut std::io::Cursor::new(&self.0))
    }
}

/// Reads the top-level boxes of `path`: `None` when it is not an MP4 with a `moov`.
fn read_structure(path: &Path) -> Result<Option<Structure>, Box<dyn std::error::Error>> {
    let mut r = BufReader::with_capacity(1 << 16, File::open(path)?);
    let len = r.get_ref().metadata()?.len();
    let mut moov = None;
    // What mp4-atom does not read of the tracks, from the moov's bytes.
    let mut extras: Vec<TrackExtras> = Vec::new();
    let mut moofs = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let Some(header) = <Option<Header> as ReadFrom>::read_from(&mut r)? else {
            break;
        };
        let body_at = r.stream_position()?;
        let body = header.size.map(|s| s as u64).unwrap_or(len - body_at);
        if pos == 0 && header.kind != mp4_atom::Ftyp::KIND {
            return Ok(None);
        }
        match header.kind {
            k if k == Moov::KIND => {
                if body_at + body > len {
                    return Err(
                        format!("a moov of {body} bytes where {} are left", len - body_at).into(),
                    );
                }
                let mut raw = vec![0u8; usize::try_from(body)?];
                r.read_exact(&mut raw)?;
                extras = take_track_extras(&mut raw);
                moov = Some(RawMoov(raw));
            }
            k if k == Moof::KIND => moofs.push((pos, Moof::read_atom(&header, &mut r)?)),
            _ => {
                r.seek_relative(body as i64)?;
            }
        }
        pos = body_at + body;
        if r.stream_position()? != pos {
            r.seek(SeekFrom::Start(pos))?;
        }
    }
    Ok(moov.map(|moov| Structure {
        len,
        moov,
        extras,
        moofs,
    }))
}

/// A track's language: its `elng` tag, else `mdhd`'s code, else `und`.
fn track_language(trak: &mp4_atom::Trak, elng: Option<String>) -> String {
    let mdhd = &trak.mdia.mdhd.language;
    match elng {
        Some(tag) => tag,
        None if mdhd.len() == 3 => mdhd.clone(),
        None => "und".into(),
    }
}

/// The shift a track's edit list applies to its times (in its timescale): one edit at most,
/// optionally after an empty one; `None` for a list this reader does not apply.
fn edit_shift(trak: &mp4_atom::Trak, movie_timescale: i64) -> Option<i64> {
    let timescale = i64::from(trak.mdia.mdhd.timescale.max(1));
    let Some(elst) = trak.edts.as_ref().and_then(|e| e.elst.as_ref()) else {
        return Some(0);
    };
    let mut empty = 0i64;
    let mut media = None;
    for e in &elst.entries {
        match e.media_time {
            None if media.is_none() => {
                empty += e.segment_duration as i64 * timescale / movie_timescale
            }
            Some(t) if media.is_none() => media = Some(t as i64),
            _ => return None,
        }
    }
    Some(empty - media.unwrap_or(0))
}

/// Expands a progressive track's sample tables.
fn table_samples(
    track: usize,
    stbl: &mp4_atom::Stbl,
    shift: i64,
    out: &mut Vec<SampleRef>,
) -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        mp4_atom::StszSamples::Identical { count, size } => vec![*size; *count as usize],
        mp4_atom::StszSamples::Different { sizes } => sizes.clone(),
    };
    if sizes.is_empty() {
        return Ok(());
    }
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(s), _) => s.entries.iter().map(|&o| u64::from(o)).collect(),
        (_, Some(c)) => c.entries.clone(),
        _ => return Err("no chunk offsets".into()),
    };
    let mut durations = stbl
        .stts
        .entries
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.sample_delta, e.sample_count as usize));
    let mut ctts = stbl
        .ctts
        .iter()
        .flat_map(|c| c.entries.iter())
        .flat_map(|e| std::iter::repeat_n(e.sample_offset, e.sample_count as usize));
    let sync: Option<std::collections::HashSet<u32>> = stbl
        .stss
        .as_ref()
        .map(|s| s.entries.iter().copied().collect());
    let mut n = 0usize;
    let mut dts = shift;
    for (ci, &chunk_offset) in chunks.iter().enumerate() {
        let chunk = ci as u32 + 1;
        let per_chunk = stbl
            .stsc
            .entries
            .iter()
            .rev()
            .find(|e| e.first_chunk <= chunk)
            .map_or(0, |e| e.samples_per_chunk);
        let mut offset = chunk_offset;
        for _ in 0..per_chunk {
            let Some(&size) = sizes.get(n) else { break };
            let duration = durations.next().unwrap_or(0);
            out.push(SampleRef {
                track,
                offset,
                size,
                dts,
                cts: ctts.next().unwrap_or(0),
                duration,
                sync: sync.as_ref().is_none_or(|s| s.contains(&(n as u32 + 1))),
            });
            offset += u64::from(size);
            dts += i64::from(duration);
            n += 1;
        }
    }
    Ok(())
}

/// What a `trak` says that mp4-atom does not read: its `elng` tag (ISO/IEC 14496-12 8.4.6:
/// a BCP 47 tag such as `pt-BR`, in `mdia`) and its QuickTime `name` (in `udta`: the name
/// players show, where ffmpeg keeps a stream's title).
#[derive(Debug, Clone, Default, PartialEq)]
struct TrackExtras {
    language: Option<String>,
    title: Option<String>,
}

/// Each `trak`'s [`TrackExtras`] from the bytes of a `moov` body, in track order; a field is
/// `None` where there is no box or it does not hold plain text. Lengths are checked by
/// `children`. Each box read is then renamed `free` in place (sizes unchanged): mp4-atom does
/// not know them, and built with its `strict` feature (which a workspace test build turns on)
/// it refuses the whole `moov`.
fn take_track_extras(moov: &mut [u8]) -> Vec<TrackExtras> {
    let base = moov.as_ptr() as usize;
    let mut found = Vec::new();
    // Where each box read begins: its type sits just before its body (an 8-byte header).
    let mut read: Vec<(usize, &[u8; 4])> = Vec::new();
    if let Some(boxes) = children(moov) {
        for (_, trak) in boxes.into_iter().filter(|(kind, _)| kind == b"trak") {
            let elng = child(trak, b"mdia").and_then(|mdia| child(mdia, b"elng"));
            let name = child(trak, b"udta").and_then(|udta| child(udta, b"name"));
            for (body, fourcc) in [(elng, b"elng"), (name, b"name")] {
                if let Some(body) = body {
                    read.push((body.as_ptr() as usize - base - 4, fourcc));
                }
            }
            found.push(TrackExtras {
                language: elng.and_then(language_tag),
                title: name.and_then(track_title),
            });
        }
    }
    for (at, fourcc) in read {
        if moov.get(at..at + 4) == Some(fourcc.as_slice()) {
            moov[at..at + 4].copy_from_slice(b"free");
        }
    }
    found
}

/// The body of `parent`'s first child of type `fourcc`.
fn child<'a>(parent: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    children(parent)?
        .into_iter()
        .find(|c| &c.0 == fourcc)
        .map(|(_, body)| body)
}

/// The text of a `name` body: UTF-8, without the terminator some writers add, a name
/// `reel_media::track_title` takes.
fn track_title(name: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(name.strip_suffix(b"\0").unwrap_or(name)).ok()?;
    reel_media::track_title(text).ok()
}

/// The tag of an `elng` body: version and flags, then a null-terminated BCP 47 tag.
fn language_tag(elng: &[u8]) -> Option<String> {
    let text = elng.get(4..)?.split(|&b| b == 0).next()?;
    let tag = std::str::from_utf8(text).ok()?;
    let plain = !tag.is_empty()
        && tag.len() <= 35
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plain.then(|| tag.to_string())
}

/// An audio track's role from its `kind` box with the DASH role scheme; main without one.
fn audio_role(trak: &mp4_atom::Trak) -> reel_media::AudioRole {
    trak.udta
        .iter()
        .flat_map(|u| &u.kind)
        .filter(|k| k.scheme_uri == reel_media::AudioRole::SCHEME)
        .find_map(|k| reel_media::AudioRole::from_name(&k.value))
        .unwrap_or_default()
}

/// The colour description of an `nclx` (or QuickTime `nclc`) box; ICC profiles are not
/// carried (the packager writes `nclx` only).
fn color_info(colr: &mp4_atom::Colr) -> Option<ColorInfo> {
    let (primaries, transfer, matrix, full_range) = match *colr {
        mp4_atom::Colr::Nclx {
            colour_primaries,
            transfer_characteristics,
            matrix_coefficients,
            full_range_flag,
        } => (
            colour_primaries,
            transfer_characteristics,
            matrix_coefficients,
            full_range_flag,
        ),
        mp4_atom::Colr::Nclc {
            colour_primaries,
            transfer_characteristics,
            matrix_coefficients,
        } => (
            colour_primaries,
            transfer_characteristics,
            matrix_coefficients,
            false,
        ),
        _ => return None,
    };
    Some(ColorInfo {
        primaries: u8::try_from(primaries).ok()?,
        transfer: u8::try_from(transfer).ok()?,
        matrix: u8::try_from(matrix).ok()?,
        full_range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn tx3g_sample_entries_give_their_defaults() {
        // As ffmpeg writes one: bottom, the default style italic, then `ftab` and `btrt`.
        let mut entry = vec![0u8; 6];
        entry.extend_from_slice(&1u16.to_be_bytes());
        entry.extend_from_slice(&[0, 0, 0, 0, 1, 0xFF, 0, 0, 0, 0xFF]);
        entry.extend_from_slice(&[0; 8]);
        entry.extend_from_slice(&[0, 0, 0, 0, 0, 1, 2, 0x10, 0xFF, 0xFF, 0xFF, 0xFF]);
        entry.extend(boxed(
            b"ftab",
            &[0, 1, 0, 1, 5, b'A', b'r', b'i', b'a', b'l'],
        ));
        entry.extend(boxed(b"btrt", &[0; 12]));
        let stsd = [vec![0, 0, 0, 0, 0, 0, 0, 1], boxed(b"tx3g", &entry)].concat();
        assert_eq!(
            tx3g_defaults(&stsd),
            Some(reel_media::Tx3gDefaults {
                face: 2,
                vertical_justification: -1
            })
        );
        let avc = [vec![0, 0, 0, 0, 0, 0, 0, 1], boxed(b"avc1", &entry)].concat();
        assert_eq!(tx3g_defaults(&avc), None);
        assert_eq!(tx3g_defaults(&stsd[..20]), None);
    }

    #[test]
    fn elng_tags_and_names_are_read_and_hidden_from_mp4_atom() {
        let elng = boxed(b"elng", b"\0\0\0\0pt-BR\0");
        let name = boxed(
            b"udta",
            &boxed(b"name", "Commentaire du réalisateur".as_bytes()),
        );
        let with = boxed(b"trak", &[boxed(b"mdia", &elng), name].concat());
        let without = boxed(b"trak", &boxed(b"mdia", &boxed(b"hdlr", b"x")));
        let mut moov = [with, without].concat();
        let len = moov.len();
        assert_eq!(
            take_track_extras(&mut moov),
            [
                TrackExtras {
                    language: Some("pt-BR".into()),
                    title: Some("Commentaire du réalisateur".into())
                },
                TrackExtras::default()
            ]
        );
        assert_eq!(moov.len(), len);
        let at = moov.windows(4).position(|w| w == b"free").expect("renamed");
        assert_eq!(&moov[at + 8..at + 14], b"pt-BR\0");
        assert!(!moov.windows(4).any(|w| w == b"elng" || w == b"name"));
        // A tag that is not plain text is not taken, nor a name that is not one line.
        assert_eq!(language_tag(b"\0\0\0\0pt BR\0"), None);
        assert_eq!(language_tag(b"\0\0"), None);
        assert_eq!(track_title(b"two\nlines"), None);
        assert_eq!(track_title(b"Dub\0").as_deref(), Some("Dub"));
    }
}
