//! The CMAF header (init segment): `ftyp` + `moov` for one track.

use crate::boxes::{unity_matrix, write_box, write_full_box, Put};
use crate::{PackagerError, Result};
use reel_media::{AudioRole, CodecConfig, TrackInfo, TrackKind};

/// Choices for the init segment that the track itself does not carry.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Peak and average bitrate in bits per second, written as `btrt` when known.
    pub bitrate: Option<(u32, u32)>,
    /// Total duration in the movie timescale ([`MOVIE_TIMESCALE`]), written as `mehd` when
    /// known.
    pub fragment_duration: Option<u64>,
    /// Protection: `encv`/`enca` with `sinf`, and a `pssh` per DRM system.
    pub protection: Option<crate::TrackProtection>,
}

/// The `mvhd` timescale of every init segment (milliseconds); `mehd` counts in it.
pub const MOVIE_TIMESCALE: u32 = 1000;

/// Writes `ftyp` and `moov` for `track`.
pub fn init_segment(track: &TrackInfo, opts: &InitOptions) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    write_box(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"cmfc");
        o.u32(0);
        o.extend_from_slice(b"iso6cmfcdash");
        if matches!(track.config, CodecConfig::Av1(_)) {
            o.extend_from_slice(b"av01");
        }
        Ok(())
    })?;
    write_box(&mut out, b"moov", |o| {
        mvhd(o, track.id + 1)?;
        trak(o, track, opts)?;
        write_box(o, b"mvex", |o| {
            if let Some(d) = opts.fragment_duration {
                write_full_box(o, b"mehd", 1, 0, |o| {
                    o.u64(d);
                    Ok(())
                })?;
            }
            write_full_box(o, b"trex", 0, 0, |o| {
                o.u32(track.id);
                o.u32(1); // default sample description index
                o.u32(0);
                o.u32(0);
                o.u32(0);
                Ok(())
            })
        })?;
        if let Some(p) = &opts.protection {
            for (_, pssh) in &p.pssh {
                o.extend_from_slice(&pssh.to_box());
            }
        }
        Ok(())
    })?;
    Ok(out)
}

fn mvhd(o: &mut Vec<u8>, next_track_id: u32) -> Result<()> {
    write_full_box(o, b"mvhd", 0, 0, |o| {
        o.u32(0); // creation time
        o.u32(0); // modification time
        o.u32(MOVIE_TIMESCALE);
        o.u32(0); // duration: carried by the fragments
        o.u32(0x0001_0000); // rate 1.0
        o.u16(0x0100); // volume 1.0
        o.zeros(10);
        unity_matrix(o);
        o.zeros(24);
        o.u32(next_track_id);
        Ok(())
    })
}

fn trak(o: &mut Vec<u8>, track: &TrackInfo, opts: &InitOptions) -> Result<()> {
    let audio = track.kind() == TrackKind::Audio;
    write_box(o, b"trak", |o| {
        // flags: track_enabled | track_in_movie
        write_full_box(o, b"tkhd", 0, 0x3, |o| {
            o.u32(0);
            o.u32(0);
            o.u32(track.id);
            o.u32(0);
            o.u32(0); // duration
            o.zeros(8);
            o.u16(0); // layer
            o.u16(0); // alternate group
            o.u16(if audio { 0x0100 } else { 0 });
            o.u16(0);
            unity_matrix(o);
            let (w, h) = match &track.video {
                Some(v) => {
                    let par = v.pixel_aspect;
                    let dw = if par.is_zero() {
                        u64::from(v.width)
                    } else {
                        u64::from(v.width) * u64::from(par.num) / u64::from(par.den)
                    };
                    (dw as u32, v.height)
                }
                None => (0, 0),
            };
            o.u32(w << 16);
            o.u32(h << 16);
            Ok(())
        })?;
        write_box(o, b"mdia", |o| {
            write_full_box(o, b"mdhd", 0, 0, |o| {
                o.u32(0);
                o.u32(0);
                o.u32(track.timescale);
                o.u32(0);
                let code = reel_media::language::primary_code(&track.language);
                o.u16(pack_language(code.as_deref().unwrap_or("und")));
                o.u16(0);
                Ok(())
            })?;
            // A tag with more than a language (`pt-BR`): 14496-12 8.4.6.
            if track.language.contains('-') {
                write_full_box(o, b"elng", 0, 0, |o| {
                    o.extend_from_slice(track.language.as_bytes());
                    o.push(0);
                    Ok(())
                })?;
            }
            // 14496-30: WebVTT has handler `text` and the null media header `nmhd` (7.2),
            // TTML handler `subt` and the subtitle media header `sthd` (6.2).
            let imsc1 = matches!(track.config, CodecConfig::Imsc1);
            let (handler, handler_name): (&[u8; 4], &[u8]) = match track.kind() {
                TrackKind::Video => (b"vide", b"VideoHandler\0"),
                TrackKind::Audio => (b"soun", b"SoundHandler\0"),
                TrackKind::Text if imsc1 => (b"subt", b"SubtitleHandler\0"),
                TrackKind::Text => (b"text", b"TextHandler\0"),
            };
            // A track with a name of its own carries it here too, where ffprobe
            // (`handler_name`) and MP4Box show it; `udta` `name` is what our demuxer reads.
            write_full_box(o, b"hdlr", 0, 0, |o| {
                o.u32(0);
                o.extend_from_slice(handler);
                o.zeros(12);
                match &track.title {
                    Some(title) => {
                        o.extend_from_slice(title.as_bytes());
                        o.push(0);
                    }
                    None => o.extend_from_slice(handler_name),
                }
                Ok(())
            })?;
            write_box(o, b"minf", |o| {
                match track.kind() {
                    TrackKind::Audio => write_full_box(o, b"smhd", 0, 0, |o| {
                        o.u32(0);
                        Ok(())
                    })?,
                    TrackKind::Video => write_full_box(o, b"vmhd", 0, 1, |o| {
                        o.zeros(8);
                        Ok(())
                    })?,
                    TrackKind::Text if imsc1 => write_full_box(o, b"sthd", 0, 0, |_| Ok(()))?,
                    TrackKind::Text => write_full_box(o, b"nmhd", 0, 0, |_| Ok(()))?,
                }
                write_box(o, b"dinf", |o| {
                    write_full_box(o, b"dref", 0, 0, |o| {
                        o.u32(1);
                        write_full_box(o, b"url ", 0, 1, |_| Ok(()))
                    })
                })?;
                write_box(o, b"stbl", |o| {
                    write_full_box(o, b"stsd", 0, 0, |o| {
                        o.u32(1);
                        sample_entry(o, track, opts)
                    })?;
                    for fourcc in [b"stts", b"stsc", b"stco"] {
                        write_full_box(o, fourcc, 0, 0, |o| {
                            o.u32(0);
                            Ok(())
                        })?;
                    }
                    write_full_box(o, b"stsz", 0, 0, |o| {
                        o.u32(0);
                        o.u32(0);
                        Ok(())
                    })
                })
            })
        })?;
        udta(o, track)
    })
}

/// The track's user data, read back by our demuxer so that packaging from rendition files
/// keeps it: the role of an audio track other than the main one (no box means main) and the
/// track's own name when it has one. No `udta` when there is neither.
fn udta(o: &mut Vec<u8>, track: &TrackInfo) -> Result<()> {
    let role = track
        .audio
        .map(|a| a.role)
        .filter(|r| *r != AudioRole::Main);
    if role.is_none() && track.title.is_none() {
        return Ok(());
    }
    write_box(o, b"udta", |o| {
        if let Some(role) = role {
            kind(o, role)?;
        }
        if let Some(title) = &track.title {
            name(o, title)?;
        }
        Ok(())
    })
}

/// `kind` (ISO/IEC 14496-12 8.10.4): an audio track's role in the DASH role scheme.
fn kind(o: &mut Vec<u8>, role: AudioRole) -> Result<()> {
    write_full_box(o, b"kind", 0, 0, |o| {
        o.extend_from_slice(AudioRole::SCHEME.as_bytes());
        o.push(0);
        o.extend_from_slice(role.name().as_bytes());
        o.push(0);
        Ok(())
    })
}

/// The QuickTime track `name` box (a plain box whose body is the UTF-8 name, no terminator):
/// where ffmpeg writes a stream's `title` and reads it back from.
fn name(o: &mut Vec<u8>, title: &str) -> Result<()> {
    write_box(o, b"name", |o| {
        o.extend_from_slice(title.as_bytes());
        Ok(())
    })
}

/// ISO 639-2/T code packed as three 5-bit letters; `und` for anything else.
fn pack_language(lang: &str) -> u16 {
    let b = lang.as_bytes();
    let code = if b.len() == 3 && b.iter().all(u8::is_ascii_lowercase) {
        b
    } else {
        b"und"
    };
    code.iter()
        .fold(0u16, |acc, &c| (acc << 5) | u16::from(c - 0x60))
}

fn sample_entry(o: &mut Vec<u8>, track: &TrackInfo, opts: &InitOptions) -> Result<()> {
    let missing = |what: &str| PackagerError::InvalidTrack {
        track: track.id,
        problem: format!(
            "{} track without {what} parameters",
            track.config.codec().name()
        ),
    };
    match &track.config {
        CodecConfig::Av1(_) | CodecConfig::Avc(_) => {
            let v = track.video.as_ref().ok_or_else(|| missing("video"))?;
            let (fourcc, config_box): (&[u8; 4], &[u8; 4]) = match track.config {
                CodecConfig::Av1(_) => (b"av01", b"av1C"),
                _ => (b"avc1", b"avcC"),
            };
            let (w, h) = (
                u16::try_from(v.width).map_err(|_| missing("16-bit width"))?,
                u16::try_from(v.height).map_err(|_| missing("16-bit height"))?,
            );
            let entry = if opts.protection.is_some() {
                b"encv"
            } else {
                fourcc
            };
            write_box(o, entry, |o| {
                o.zeros(6);
                o.u16(1); // data reference index
                o.zeros(16);
                o.u16(w);
                o.u16(h);
                o.u32(0x0048_0000); // 72 dpi
                o.u32(0x0048_0000);
                o.u32(0);
                o.u16(1); // frame count
                o.zeros(32); // compressor name
                o.u16(0x0018);
                o.u16(0xffff);
                write_box(o, config_box, |o| {
                    match &track.config {
                        CodecConfig::Av1(c) => o.extend_from_slice(&c.to_record()),
                        CodecConfig::Avc(c) => o.extend_from_slice(c.to_record()),
                        _ => unreachable!(),
                    }
                    Ok(())
                })?;
                if let Some(c) = v.color {
                    write_box(o, b"colr", |o| {
                        o.extend_from_slice(b"nclx");
                        o.u16(c.primaries.into());
                        o.u16(c.transfer.into());
                        o.u16(c.matrix.into());
                        o.u8(if c.full_range { 0x80 } else { 0 });
                        Ok(())
                    })?;
                }
                if let Some(m) = v.hdr.and_then(|h| h.mastering) {
                    mdcv(o, &m)?;
                }
                if let Some(l) = v.hdr.and_then(|h| h.light) {
                    write_box(o, b"clli", |o| {
                        o.u16(l.max_cll);
                        o.u16(l.max_fall);
                        Ok(())
                    })?;
                }
                let par = if v.pixel_aspect.is_zero() {
                    reel_media::Rational::new(1, 1)
                } else {
                    v.pixel_aspect
                };
                write_box(o, b"pasp", |o| {
                    o.u32(par.num);
                    o.u32(par.den);
                    Ok(())
                })?;
                btrt(o, opts)?;
                protection(o, fourcc, opts)
            })
        }
        CodecConfig::Aac(_) | CodecConfig::Opus(_) => {
            let a = track.audio.as_ref().ok_or_else(|| missing("audio"))?;
            let fourcc = if matches!(track.config, CodecConfig::Aac(_)) {
                b"mp4a"
            } else {
                b"Opus"
            };
            let entry = if opts.protection.is_some() {
                b"enca"
            } else {
                fourcc
            };
            write_box(o, entry, |o| {
                o.zeros(6);
                o.u16(1);
                o.zeros(8);
                o.u16(a.channels.into());
                o.u16(16);
                o.zeros(4);
                // 16.16 sample rate; rates above 65535 Hz do not fit and are written as 0.
                o.u32(u32::from(u16::try_from(a.sample_rate).unwrap_or(0)) << 16);
                match &track.config {
                    CodecConfig::Aac(asc) => esds(o, track.id, asc.to_record(), opts)?,
                    CodecConfig::Opus(c) => write_box(o, b"dOps", |o| {
                        o.extend_from_slice(&c.to_dops());
                        Ok(())
                    })?,
                    _ => unreachable!(),
                }
                btrt(o, opts)?;
                protection(o, fourcc, opts)
            })
        }
        // 14496-30 7.5: WVTTSampleEntry, a plain text sample entry with `vttC` (the WebVTT
        // file header) and the recommended `vlab` (a label of the source, which Shaka
        // Packager's reader requires): the track's name. Text is never encrypted.
        CodecConfig::WebVtt(config) => write_box(o, b"wvtt", |o| {
            o.zeros(6);
            o.u16(1); // data reference index
            write_box(o, b"vttC", |o| {
                o.extend_from_slice(config.as_bytes());
                Ok(())
            })?;
            write_box(o, b"vlab", |o| {
                o.extend_from_slice(track.name.as_bytes());
                Ok(())
            })?;
            btrt(o, opts)
        }),
        // 14496-30 6.5 (ISO/IEC 14496-12 12.6.3): XMLSubtitleSampleEntry `stpp`, the
        // document's namespace, no schema location, no auxiliary MIME types (null-terminated
        // strings). Text is never encrypted.
        CodecConfig::Imsc1 => write_box(o, b"stpp", |o| {
            o.zeros(6);
            o.u16(1); // data reference index
            for field in [TTML_NAMESPACE, "", ""] {
                o.extend_from_slice(field.as_bytes());
                o.u8(0);
            }
            btrt(o, opts)
        }),
    }
}

/// The TTML namespace an `stpp` sample entry names.
const TTML_NAMESPACE: &str = "http://www.w3.org/ns/ttml";

fn protection(o: &mut Vec<u8>, original: &[u8; 4], opts: &InitOptions) -> Result<()> {
    match &opts.protection {
        Some(p) => crate::protect::sinf(o, original, &p.info),
        None => Ok(()),
    }
}

/// `MasteringDisplayColourVolumeBox` (`mdcv`, ISO/IEC 23001-8 / the HEVC and AV1 bindings'
/// SMPTE ST 2086 carriage): the primaries in the order green, blue, red, as HEVC's SEI has
/// them, then the white point and the luminance range.
fn mdcv(o: &mut Vec<u8>, m: &reel_media::MasteringDisplay) -> Result<()> {
    write_box(o, b"mdcv", |o| {
        let [red, green, blue] = m.primaries;
        for (x, y) in [green, blue, red] {
            o.u16(x);
            o.u16(y);
        }
        o.u16(m.white_point.0);
        o.u16(m.white_point.1);
        o.u32(m.max_luminance);
        o.u32(m.min_luminance);
        Ok(())
    })
}

fn btrt(o: &mut Vec<u8>, opts: &InitOptions) -> Result<()> {
    if let Some((max, avg)) = opts.bitrate {
        write_box(o, b"btrt", |o| {
            o.u32(0);
            o.u32(max);
            o.u32(avg);
            Ok(())
        })?;
    }
    Ok(())
}

/// `esds` with an ES_Descriptor (ISO/IEC 14496-1 7.2.6.5) carrying the AudioSpecificConfig.
fn esds(o: &mut Vec<u8>, track_id: u32, asc: &[u8], opts: &InitOptions) -> Result<()> {
    fn descriptor(o: &mut Vec<u8>, tag: u8, body: &[u8]) {
        o.u8(tag);
        // Four-byte size form, accepted by every reader and simple to write.
        let n = body.len() as u32;
        o.extend_from_slice(&[
            0x80 | ((n >> 21) & 0x7f) as u8,
            0x80 | ((n >> 14) & 0x7f) as u8,
            0x80 | ((n >> 7) & 0x7f) as u8,
            (n & 0x7f) as u8,
        ]);
        o.extend_from_slice(body);
    }
    let (max, avg) = opts.bitrate.unwrap_or((0, 0));
    let mut dcd = vec![0x40, 0x15, 0, 0, 0];
    dcd.u32(max);
    dcd.u32(avg);
    descriptor(&mut dcd, 0x05, asc);
    let mut es = Vec::new();
    es.u16(track_id as u16);
    es.u8(0);
    descriptor(&mut es, 0x04, &dcd);
    descriptor(&mut es, 0x06, &[0x02]);
    write_full_box(o, b"esds", 0, 0, |o| {
        descriptor(o, 0x03, &es);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_packing() {
        // ISO/IEC 14496-12: 'eng' packs to 0x15C7.
        assert_eq!(pack_language("eng"), 0x15c7);
        assert_eq!(pack_language("xx"), pack_language("und"));
    }
}
