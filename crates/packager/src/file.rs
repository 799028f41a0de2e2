//! Streams one track into a single fragmented MP4 file.

use crate::{init_segment, media_fragment, InitOptions, PackagerError, Result};
use reel_media::{EncodedSample, TrackInfo, TrackKind};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// When a new fragment starts.
#[derive(Debug, Clone, Copy)]
pub struct FragmentPolicy {
    /// Minimum fragment duration in seconds. Video fragments start only on sync samples.
    pub min_duration: f64,
}

impl Default for FragmentPolicy {
    fn default() -> Self {
        Self { min_duration: 2.0 }
    }
}

/// A fragmented MP4 file for one track, written as samples arrive.
///
/// Memory holds one fragment at a time. The file is written as `NAME.partial` and renamed to
/// its final name by [`finish`](Self::finish); dropping the writer unfinished removes the
/// partial file, so no complete-looking output is ever left by a failed run.
pub struct FragmentedMp4File {
    track: TrackInfo,
    policy: FragmentPolicy,
    out: Option<BufWriter<File>>,
    path: PathBuf,
    partial: PathBuf,
    pending: Vec<EncodedSample>,
    sequence: u32,
    dts_origin: Option<i64>,
    last_dts: Option<i64>,
    /// The caller's track ID, for errors (the file itself says 1), and its track.
    id: u32,
    /// The track as written in the file (track 1).
    file_track: TrackInfo,
    samples_written: u64,
    mehd_at: u64,
    end_time: i64,
}

impl FragmentedMp4File {
    /// Creates `path.partial` and writes the init segment into it.
    pub fn create(path: &Path, track: TrackInfo, policy: FragmentPolicy) -> Result<Self> {
        // The file holds this one track, written as track 1 (as Shaka Packager does; its
        // reader crashes on, or misreads, single-track files with another ID). The caller's
        // ID stays in `track()` and in errors.
        let id = track.id;
        let mut file_track = track.clone();
        file_track.id = 1;
        let partial = partial_path(path);
        let io = |source| PackagerError::Io {
            path: partial.clone(),
            source,
        };
        let file = File::create(&partial).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // A placeholder mehd (patched in finish) lets readers know the duration up front.
        let init = init_segment(
            &file_track,
            &InitOptions {
                fragment_duration: Some(0),
                ..Default::default()
            },
        )?;
        let mehd_at = find_box(&init, b"mehd").map(|p| p as u64 + 12).unwrap_or(0);
        out.write_all(&init).map_err(io)?;
        Ok(Self {
            id,
            track,
            file_track,
            policy,
            out: Some(out),
            path: path.to_path_buf(),
            partial,
            pending: Vec::new(),
            sequence: 0,
            dts_origin: None,
            last_dts: None,
            samples_written: 0,
            mehd_at,
            end_time: 0,
        })
    }

    /// The track as the caller gave it (its own ID, not the file's 1).
    pub fn track(&self) -> &TrackInfo {
        &self.track
    }

    /// Adds a sample (in decode order); writes the pending fragment first when this sample
    /// may start a new one.
    pub fn push(&mut self, sample: EncodedSample) -> Result<()> {
        let index = self.samples_written + self.pending.len() as u64;
        if let Some(last) = self.last_dts {
            if sample.dts <= last {
                return Err(PackagerError::InvalidSample {
                    track: self.id,
                    index,
                    dts: sample.dts,
                    problem: format!("decode time not after the previous sample's ({last})"),
                });
            }
        }
        self.dts_origin.get_or_insert(sample.dts.min(0));
        let can_start = sample.sync || self.file_track.kind() == TrackKind::Audio;
        if can_start && !self.pending.is_empty() {
            let first = self.pending[0].dts;
            let span = (sample.dts - first) as f64 / f64::from(self.file_track.timescale);
            if span >= self.policy.min_duration {
                self.flush()?;
            }
        }
        if self.pending.is_empty() && !can_start && self.samples_written == 0 {
            return Err(PackagerError::InvalidSample {
                track: self.id,
                index,
                dts: sample.dts,
                problem: "the track does not start with a sync sample".into(),
            });
        }
        self.last_dts = Some(sample.dts);
        self.end_time = self.end_time.max(sample.pts + i64::from(sample.duration));
        self.pending.push(sample);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.sequence += 1;
        let frag = media_fragment(
            &self.file_track,
            self.sequence,
            &self.pending,
            self.dts_origin.unwrap_or(0),
            false,
        )?;
        let out = self.out.as_mut().expect("writer used after finish");
        out.write_all(&frag).map_err(|source| PackagerError::Io {
            path: self.partial.clone(),
            source,
        })?;
        self.samples_written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes the last fragment, records the duration and renames the file into place.
    /// Returns the number of samples written.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        if self.samples_written == 0 {
            return Err(PackagerError::InvalidTrack {
                track: self.id,
                problem: "no samples".into(),
            });
        }
        let io = |source| PackagerError::Io {
            path: self.partial.clone(),
            source,
        };
        let out = self.out.take().expect("finish called once");
        let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
        if self.mehd_at > 0 {
            file.seek(SeekFrom::Start(self.mehd_at)).map_err(io)?;
            // mehd counts in the movie timescale, not the track's: round up so that the
            // declared duration never falls short of the media.
            let ticks = (self.end_time.max(0) as u128 * u128::from(crate::init::MOVIE_TIMESCALE))
                .div_ceil(u128::from(self.file_track.timescale.max(1)));
            file.write_all(&(ticks as u64).to_be_bytes()).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.partial, &self.path).map_err(io)?;
        Ok(self.samples_written)
    }
}

impl Drop for FragmentedMp4File {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

pub(crate) fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Offset of the first box of type `fourcc`, searching nested container boxes.
fn find_box(data: &[u8], fourcc: &[u8; 4]) -> Option<usize> {
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().ok()?) as usize;
        let kind = &data[pos + 4..pos + 8];
        if kind == fourcc {
            return Some(pos);
        }
        if size < 8 || pos + size > data.len() {
            return None;
        }
        if matches!(kind, b"moov" | b"mvex") {
            if let Some(p) = find_box(&data[pos + 8..pos + size], fourcc) {
                return Some(pos + 8 + p);
            }
        }
        pos += size;
    }
    None
}
