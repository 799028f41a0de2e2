//! A writer thread: the packager hands it finished segments (fragment headers and the owned,
//! already encrypted samples) and goes on with the next ones, so building and encrypting
//! segments overlaps with the `write` system calls that copy them into the page cache.

use crate::package::io;
use crate::{PackagerError, Result};
use reel_media::EncodedSample;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// A segment file, complete and in place: its path and its track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSegment {
    pub path: PathBuf,
    /// The track's name: the folder its segments are in.
    pub track: String,
    pub kind: reel_media::TrackKind,
}

/// Where a segment goes.
pub(crate) enum Target {
    /// Appended to the open single file of track `index`.
    Single(usize),
    /// A file of its own, written as `tmp` and renamed to `path` when complete.
    Own { tmp: PathBuf, path: PathBuf },
}

/// One segment: each fragment's header, then that fragment's samples.
pub(crate) struct Job {
    pub target: Target,
    /// The track's name (its folder) and kind, for the report of the written file.
    pub track: (String, reel_media::TrackKind),
    pub fragments: Vec<(Vec<u8>, Range<usize>)>,
    pub samples: Vec<EncodedSample>,
}

enum Msg {
    Open(usize, BufWriter<File>, PathBuf),
    Write(Job),
}

/// A track's open single file, and its path for errors.
type OpenFile = (BufWriter<File>, PathBuf);

/// What the thread leaves: the open single files (by track index) and the first error.
type Outcome = (Vec<Option<OpenFile>>, Option<PackagerError>);

pub(crate) struct Writer {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<Outcome>>,
}

/// Segments queued at most: bounds the memory held for writing.
const QUEUE: usize = 4;

impl Writer {
    /// `written` is told of each segment file once it is in place.
    pub(crate) fn start(written: Option<std::sync::mpsc::Sender<WrittenSegment>>) -> Self {
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("package-writer".into())
            .spawn(move || {
                let mut files: Vec<Option<OpenFile>> = Vec::new();
                let mut error = None;
                for msg in rx {
                    match msg {
                        Msg::Open(i, f, path) => {
                            if files.len() <= i {
                                files.resize_with(i + 1, || None);
                            }
                            files[i] = Some((f, path));
                        }
                        // After an error, drain the queue without writing.
                        Msg::Write(_) if error.is_some() => {}
                        Msg::Write(job) => match write(&mut files, job) {
                            Ok(Some(segment)) => {
                                if let Some(w) = &written {
                                    let _ = w.send(segment);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => error = Some(e),
                        },
                    }
                }
                (files, error)
            })
            .expect("spawning the writer thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn send(&self, msg: Msg) -> Result<()> {
        let gone = || PackagerError::InvalidTrack {
            track: 0,
            problem: "the writer thread stopped".into(),
        };
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(msg)
            .map_err(|_| gone())
    }

    /// Hands over the single file of track `index`.
    pub(crate) fn open(&self, index: usize, file: BufWriter<File>, path: PathBuf) -> Result<()> {
        self.send(Msg::Open(index, file, path))
    }

    pub(crate) fn write(&self, job: Job) -> Result<()> {
        self.send(Msg::Write(job))
    }

    /// Waits for every queued segment; returns the single files, or the first write error.
    pub(crate) fn finish(&mut self) -> Result<Vec<Option<BufWriter<File>>>> {
        drop(self.tx.take());
        let (files, error) = self
            .thread
            .take()
            .expect("finished once")
            .join()
            .expect("the writer thread does not panic");
        match error {
            Some(e) => Err(e),
            None => Ok(files.into_iter().map(|f| f.map(|f| f.0)).collect()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes one segment; the path of its own file, when it has one.
fn write(files: &mut [Option<OpenFile>], job: Job) -> Result<Option<WrittenSegment>> {
    match job.target {
        Target::Single(i) => {
            let (out, path) = files.get_mut(i).and_then(Option::as_mut).ok_or_else(|| {
                PackagerError::InvalidTrack {
                    track: 0,
                    problem: format!("no open file for track index {i}"),
                }
            })?;
            write_fragments(out, &job.fragments, &job.samples).map_err(io(path))?;
            Ok(None)
        }
        Target::Own { tmp, path } => {
            let f = File::create(&tmp).map_err(io(&tmp))?;
            let mut out = BufWriter::with_capacity(1 << 20, f);
            write_fragments(&mut out, &job.fragments, &job.samples).map_err(io(&tmp))?;
            drop(out.into_inner().map_err(|e| io(&tmp)(e.into_error()))?);
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            let (track, kind) = job.track;
            Ok(Some(WrittenSegment { path, track, kind }))
        }
    }
}

fn write_fragments(
    out: &mut impl Write,
    fragments: &[(Vec<u8>, Range<usize>)],
    samples: &[EncodedSample],
) -> std::io::Result<()> {
    for (header, range) in fragments {
        crate::fragment::write_parts(out, header, &samples[range.clone()])?;
    }
    Ok(())
}
