//! Renditions (files) into one CMAF package: demux every input and feed one packager, then
//! write the manifests.

use crate::PipelineError;
use reel_encoder::Event;
use reel_packager::{PackageOptions, PackagedTrack, Packager};
use reel_publish::{content_type_for, EarlyReport, EarlyUploads, Journal, Tier, Upload};
use std::path::{Path, PathBuf};

/// Packages `inputs` into `out`. Files with video go first, so that audio segments can follow
/// the video's boundaries as they come. Track names come from the file names. The audio
/// track of each of `audio` gets its language and role (and the name `audio_LANG_ROLE`).
/// `subtitles` become text tracks on the video's segments; `thumbnails` are copied in and
/// listed in the manifests.
pub fn package_files(
    inputs: &[PathBuf],
    audio: &[crate::AudioFile],
    subtitles: &[crate::SubtitleInput],
    thumbnails: Option<&crate::ThumbnailSprites>,
    out: &Path,
    mut opts: PackageOptions,
    on_notice: &mut dyn FnMut(String),
) -> Result<Vec<PackagedTrack>, PipelineError> {
    // Read first: a bad subtitle file fails before anything is packaged.
    let subtitles = crate::subtitles::read_subtitles(subtitles)?;
    let mut order = Vec::new();
    let mut longest: f64 = 0.0;
    let files = inputs
        .iter()
        .map(|p| (p, None))
        .chain(audio.iter().map(|a| (&a.path, Some(a))));
    for (input, label) in files {
        let (duration, has_video) = reel_encoder::summary(input)?;
        longest = longest.max(duration);
        order.push((!has_video, input.clone(), label));
    }
    order.sort_by_key(|(audio_only, _, _)| *audio_only);
    if longest > 0.0 {
        opts.expected_duration = Some(longest);
    }
    let mut packager = Packager::new(out, opts)?;
    let mut next_id = 1;
    for (audio_only, input, label) in &order {
        let unannounced = |id: u32| PipelineError::State {
            path: input.clone(),
            detail: format!("sample for track {id}, which was never announced"),
        };
        let mut named_main = false;
        let stem = match label {
            Some(a) => a.track_name(),
            None => input
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "track".into()),
        };
        // Track ids are renumbered across inputs: (id in this input, id in the package).
        let mut ids: Vec<(u32, u32)> = Vec::new();
        let map = |ids: &[(u32, u32)], id: u32| -> Result<u32, PipelineError> {
            ids.iter()
                .find(|m| m.0 == id)
                .map(|m| m.1)
                .ok_or_else(|| unannounced(id))
        };
        for event in reel_encoder::demux(input)? {
            match event? {
                Event::Track(mut info) => {
                    // The file's name for its main track (its video, or its audio in an
                    // audio-only file); the stream's kind and number for the others.
                    let main = if *audio_only {
                        info.kind() == reel_media::TrackKind::Audio
                    } else {
                        info.kind() == reel_media::TrackKind::Video
                    };
                    info.name = if main && !named_main {
                        named_main = true;
                        stem.clone()
                    } else {
                        format!("{stem}_{}", info.name)
                    };
                    if let (Some(a), Some(params)) = (label, info.audio.as_mut()) {
                        params.role = a.role;
                        info.language = a.language.track_language();
                        info.title = a.title.clone().or(info.title);
                    }
                    ids.push((info.id, next_id));
                    info.id = next_id;
                    next_id += 1;
                    packager.add_track(info)?;
                }
                Event::Sample { track, sample } => packager.push(map(&ids, track)?, sample)?,
                Event::TrackEnd { track } => packager.end_track(map(&ids, track)?)?,
                Event::Notice(n) => on_notice(format!("{}: {n}", input.display())),
                Event::Progress(_) | Event::Still { .. } | Event::Thumbnail { .. } => {}
            }
        }
        if ids.is_empty() {
            return Err(PipelineError::State {
                path: input.clone(),
                detail: "no track to package".into(),
            });
        }
    }
    let mut tracks = packager.finish()?;
    crate::subtitles::add_subtitles(out, &mut tracks, subtitles, on_notice)?;
    let thumbnails = thumbnails.map(|t| t.copy_into(out)).transpose()?;
    reel_packager::write_manifests(out, &tracks, thumbnails)?;
    Ok(tracks)
}

/// Packages an encode as its samples arrive: every track of the plan into one [`Packager`].
///
/// The encoders announce their tracks when their first output appears, in no fixed order.
/// Samples wait here until every expected track is known; the tracks are then added in the
/// plan's order (video first, as [`package_files`] adds finished files), so the package is the
/// one the finished renditions would give. What waits is bounded by the encoders' start-up
/// delay, not by the title's length.
pub(crate) struct LivePackage {
    packager: Option<Packager>,
    out: PathBuf,
    /// Segments go up as the packager finishes them, when set.
    early: Option<Early>,
    /// The title's subtitles, read before the encode, written as text tracks at the end.
    subtitles: Vec<crate::subtitles::ReadSubtitles>,
    /// Track ids in the order they are added, and what each announced.
    expected: Vec<u32>,
    announced: Vec<Option<reel_media::TrackInfo>>,
    /// Samples and track ends that arrived before every track was announced.
    waiting: Vec<Event>,
}

/// What a live package leaves: its tracks, and with early uploads the journal they recorded
/// in and what they did.
pub(crate) struct LiveOutcome {
    pub tracks: Vec<PackagedTrack>,
    pub early: Option<(Journal, EarlyReport)>,
}

/// Uploads of finished segments during the encode.
struct Early {
    uploads: EarlyUploads,
    written: std::sync::mpsc::Receiver<reel_packager::WrittenSegment>,
}

impl LivePackage {
    /// `order` lists the plan's track ids, video before audio. With `early`, each segment is
    /// uploaded as soon as it is written (segment-file addressing only; see [`EarlyUploads`]).
    /// `subtitles` become text tracks when the package finishes.
    pub(crate) fn new(
        out: &Path,
        mut opts: PackageOptions,
        order: Vec<u32>,
        early: Option<EarlyUploads>,
        subtitles: Vec<crate::subtitles::ReadSubtitles>,
    ) -> Result<Self, PipelineError> {
        let early = match early {
            Some(uploads) if opts.addressing == reel_packager::Addressing::SegmentFiles => {
                let (tx, written) = std::sync::mpsc::channel();
                opts.segment_written = Some(tx);
                Some(Early { uploads, written })
            }
            _ => None,
        };
        Ok(Self {
            packager: Some(Packager::new(out, opts)?),
            out: out.to_path_buf(),
            early,
            subtitles,
            announced: vec![None; order.len()],
            expected: order,
            waiting: Vec::new(),
        })
    }

    /// Every track announced (and added: `announced` is emptied then, so this stays true).
    fn started(&self) -> bool {
        self.announced.iter().all(Option::is_some)
    }

    fn packager(&mut self) -> &mut Packager {
        self.packager.as_mut().expect("finished once")
    }

    /// Takes one encode event (others than tracks, samples and track ends are ignored).
    pub(crate) fn on_event(&mut self, event: &Event) -> Result<(), PipelineError> {
        if !self.started() {
            match event {
                Event::Track(info) => {
                    let slot = self.slot(info.id)?;
                    self.announced[slot] = Some(info.clone());
                    if self.started() {
                        // Named and numbered as package_files names and numbers files.
                        for (i, info) in std::mem::take(&mut self.announced)
                            .into_iter()
                            .flatten()
                            .enumerate()
                        {
                            let mut info = info;
                            info.name = reel_packager::safe_file_name(&info.name);
                            info.id = i as u32 + 1;
                            self.packager().add_track(info)?;
                        }
                        for e in std::mem::take(&mut self.waiting) {
                            self.forward(e)?;
                        }
                    }
                }
                Event::Sample { .. } | Event::TrackEnd { .. } => self.waiting.push(event.clone()),
                _ => {}
            }
            return Ok(());
        }
        match event {
            Event::Sample { .. } | Event::TrackEnd { .. } => self.forward(event.clone())?,
            _ => {}
        }
        self.send_written();
        Ok(())
    }

    /// Hands the segments written since the last call to the early uploads.
    fn send_written(&self) {
        let Some(e) = &self.early else { return };
        for segment in e.written.try_iter() {
            let Ok(rel) = segment.path.strip_prefix(&self.out) else {
                continue;
            };
            let key = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let audio = segment.kind == reel_media::TrackKind::Audio;
            e.uploads.send(Upload::new(
                &key,
                &segment.path,
                Tier::Media,
                content_type_for(&key, audio),
            ));
        }
    }

    /// Early uploads' events since the last call.
    pub(crate) fn publish_events(&self) -> Vec<reel_publish::PublishEvent> {
        self.early
            .as_ref()
            .map(|e| e.uploads.events())
            .unwrap_or_default()
    }

    /// The position of encoder track `track` in the plan's order (its package track id is one
    /// more).
    fn slot(&self, track: u32) -> Result<usize, PipelineError> {
        self.expected
            .iter()
            .position(|&id| id == track)
            .ok_or_else(|| {
                reel_packager::PackagerError::InvalidTrack {
                    track,
                    problem: "a track the plan does not have".into(),
                }
                .into()
            })
    }

    fn forward(&mut self, event: Event) -> Result<(), PipelineError> {
        match event {
            Event::Sample { track, sample } => {
                let id = self.slot(track)? as u32 + 1;
                self.packager().push(id, sample)?
            }
            Event::TrackEnd { track } => {
                let id = self.slot(track)? as u32 + 1;
                self.packager().end_track(id)?
            }
            _ => {}
        }
        Ok(())
    }

    /// The last segments, init segments, the subtitles' text tracks and the manifests; what
    /// the title record needs. With early uploads, waits for them and gives back the journal
    /// and what they did.
    pub(crate) fn finish(
        mut self,
        thumbnails: Option<&crate::ThumbnailSprites>,
        on_notice: &mut dyn FnMut(String),
    ) -> Result<LiveOutcome, PipelineError> {
        if !self.started() {
            return Err(PipelineError::State {
                path: self.out.clone(),
                detail: "the encode ended before every rendition had started".into(),
            });
        }
        let mut tracks = self.packager.take().expect("finished once").finish()?;
        // The last segments are written now.
        self.send_written();
        let subtitles = std::mem::take(&mut self.subtitles);
        crate::subtitles::add_subtitles(&self.out, &mut tracks, subtitles, on_notice)?;
        let thumbnails = thumbnails.map(|t| t.copy_into(&self.out)).transpose()?;
        reel_packager::write_manifests(&self.out, &tracks, thumbnails)?;
        Ok(LiveOutcome {
            tracks,
            early: self.early.take().map(|e| e.uploads.finish()),
        })
    }
}
