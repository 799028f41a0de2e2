//! The AV1 frame header and H.264 slice header parsers against an independent reader:
//! FFmpeg's `trace_headers` bitstream filter prints every syntax element with its bit
//! position. For streams from four encoders nobody here wrote (libaom with tiles, tile
//! groups, restoration, 10 bits, 4:4:4 and error resilience; SVT-AV1 with film grain; rav1e; x264 with CABAC, CAVLC,
//! B-pyramids, weighted prediction, several slices, interlacing and 4:4:4), every header
//! must end exactly where FFmpeg's does.

use std::path::{Path, PathBuf};
use std::process::Command;

use reel_media::av1::{Av1Config, TileLocator, OBU_FRAME, OBU_FRAME_HEADER};
use reel_media::h264::{ParameterSets, Pps, Rbsp, Sps};

const SOURCE: &str = "testsrc2=size=352x288:rate=25,format=yuv420p";

fn encode(dir: &Path, name: &str, input: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            input,
        ])
        .args(["-t", "0.8"])
        .args(args)
        .args(["-y"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(
        status.success(),
        "ffmpeg could not encode {name} with {args:?}"
    );
    out
}

/// For each section called `section` in FFmpeg's trace, in order: the bit one past the
/// last syntax element read in it (alignment and trailing bits left out).
fn trace_ends(file: &Path, section: &str, ignored: &[&str]) -> Vec<usize> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(file)
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "trace_headers failed on {}",
        file.display()
    );
    let text = String::from_utf8_lossy(&out.stderr);
    let mut ends = Vec::new();
    let mut current: Option<usize> = None;
    for line in text.lines() {
        let line = match line.find("] ") {
            Some(at) if line.starts_with("[trace_headers") => &line[at + 2..],
            _ => continue,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let is_element = fields.len() >= 4 && fields[0].parse::<usize>().is_ok();
        if !is_element {
            if let Some(end) = current.take() {
                ends.push(end);
            }
            if line.trim() == section {
                current = Some(0);
            }
            continue;
        }
        let Some(end) = current.as_mut() else {
            continue;
        };
        // "<position> <name> <bits> = <value>"; computed values have no bits.
        let (position, name, bits) = (fields[0], fields[1], fields[2]);
        if bits == "=" || ignored.iter().any(|i| name.starts_with(i)) {
            continue;
        }
        let position: usize = position.parse().unwrap();
        *end = (*end).max(position + bits.len());
    }
    if let Some(end) = current {
        ends.push(end);
    }
    ends
}

/// The temporal units of an IVF file.
fn ivf_frames(file: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(file).unwrap();
    assert_eq!(&data[..4], b"DKIF");
    let mut pos = usize::from(u16::from_le_bytes([data[6], data[7]]));
    let mut frames = Vec::new();
    while pos + 12 <= data.len() {
        let size = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        frames.push(data[pos + 12..pos + 12 + size].to_vec());
        pos += 12 + size;
    }
    frames
}

/// Our frame header ends, in bits from the start of each OBU, in stream order.
fn av1_header_ends(file: &Path) -> Vec<usize> {
    let frames = ivf_frames(file);
    let config =
        Av1Config::from_obus(&frames[0]).expect("first temporal unit has a sequence header");
    let mut locator = TileLocator::new(&config);
    let mut ends = Vec::new();
    for (n, tu) in frames.iter().enumerate() {
        let layout = locator
            .layout(tu)
            .unwrap_or_else(|e| panic!("{}: temporal unit {n}: {e}", file.display()));
        for obu in layout {
            assert!(
                matches!(obu.obu.obu_type, OBU_FRAME | OBU_FRAME_HEADER)
                    || obu.frame_header_bits.is_none()
            );
            if let Some(bits) = obu.frame_header_bits {
                ends.push((obu.obu.payload_start - obu.obu.start) * 8 + bits);
            }
            if let (Some(first), Some(last)) = (obu.tiles.first(), obu.tiles.last()) {
                assert!(first.start >= obu.obu.payload_start && last.end == obu.obu.end);
            }
        }
    }
    ends
}

fn check_av1(dir: &Path, name: &str, input: &str, args: &[&str]) {
    let file = encode(dir, name, input, args);
    let ours = av1_header_ends(&file);
    let ffmpeg = trace_ends(&file, "Frame Header", &["zero_bit", "trailing_"]);
    assert!(
        ours.len() >= 10,
        "{name}: only {} frame headers",
        ours.len()
    );
    assert_eq!(
        ours, ffmpeg,
        "{name}: frame header ends (bits from the OBU start)"
    );
}

#[test]
fn av1_frame_headers_end_where_ffmpeg_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    check_av1(
        d,
        "aom-tiles.ivf",
        SOURCE,
        &[
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-g",
            "8",
            "-tiles",
            "2x2",
            "-aom-params",
            "num-tile-groups=2:enable-restoration=1:enable-global-motion=1",
        ],
    );
    check_av1(
        d,
        "aom-10bit-error-resilient.ivf",
        "testsrc2=size=352x288:rate=25,format=yuv420p10le",
        &[
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-g",
            "8",
            "-aom-params",
            "error-resilient=1",
        ],
    );
    check_av1(
        d,
        "aom-444.ivf",
        "testsrc2=size=352x288:rate=25,format=yuv444p",
        &[
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-g",
            "8",
            "-enable-cdef",
            "0",
        ],
    );
    check_av1(
        d,
        "svt-grain.ivf",
        SOURCE,
        &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-g",
            "8",
            "-svtav1-params",
            "film-grain=8",
        ],
    );
    check_av1(
        d,
        "rav1e-tiles.ivf",
        SOURCE,
        &["-c:v", "librav1e", "-speed", "10", "-g", "8", "-tiles", "4"],
    );
}

/// The NAL units of an Annex B stream.
fn annex_b_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
            while end > s && data[end - 1] == 0 {
                end -= 1; // trailing_zero_8bits and the zero of a 4-byte start code
            }
            &data[s..end]
        })
        .collect()
}

/// Our slice header ends, in RBSP bits from the NAL header, in stream order.
fn h264_header_ends(file: &Path) -> Vec<usize> {
    let data = std::fs::read(file).unwrap();
    let mut sets = ParameterSets::default();
    let mut ends = Vec::new();
    for nal in annex_b_nals(&data) {
        match nal[0] & 0x1f {
            7 => sets.add_sps(Sps::parse(nal).unwrap()),
            8 => sets.add_pps(Pps::parse(nal).unwrap()),
            1 | 5 => {
                let rbsp = Rbsp::unescape(&nal[1..], usize::MAX);
                let bits = sets
                    .slice_header_bits(nal[0], &rbsp.data)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                ends.push(8 + bits);
            }
            _ => {}
        }
    }
    ends
}

fn check_h264(dir: &Path, name: &str, input: &str, args: &[&str]) {
    let file = encode(dir, name, input, args);
    let ours = h264_header_ends(&file);
    let ffmpeg = trace_ends(&file, "Slice Header", &["cabac_alignment_one_bit"]);
    assert!(ours.len() >= 20, "{name}: only {} slices", ours.len());
    assert_eq!(
        ours, ffmpeg,
        "{name}: slice header ends (RBSP bits from the NAL header)"
    );
}

#[test]
fn h264_slice_headers_end_where_ffmpeg_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    check_h264(
        d,
        "cabac-b-pyramid.h264",
        SOURCE,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "12",
            "-bf",
            "3",
            "-b_strategy",
            "2",
            "-weightp",
            "2",
            "-slices",
            "3",
            "-x264-params",
            "b-pyramid=strict:weightb=1:ref=4",
        ],
    );
    check_h264(
        d,
        "cavlc-baseline.h264",
        SOURCE,
        &[
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "6",
            "-slices",
            "2",
        ],
    );
    check_h264(
        d,
        "interlaced.h264",
        SOURCE,
        &["-c:v", "libx264", "-flags", "+ildct", "-g", "8", "-bf", "2"],
    );
    check_h264(
        d,
        "high444-scaling.h264",
        "testsrc2=size=352x288:rate=25,format=yuv444p",
        &[
            "-c:v",
            "libx264",
            "-g",
            "8",
            "-x264-params",
            "cqm=jvt:bframes=2",
        ],
    );
}
