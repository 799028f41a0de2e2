//! Renditions (files) into one CMAF package: demux every input and feed one packager, then
//! write the manifests.

use crate::PipelineError;
use reel_encoder::Event;
use reel_packager::{PackageOptions, PackagedTrack, Packager};
use std::path::{Path, PathBuf};

/// Packages `inputs` into `out`. Files with video go first, so that audio segments can follow
/// the video's boundaries as they come. Track names come from the file names.
pub fn package_files(
    inputs: &[PathBuf],
    out: &Path,
    mut opts: PackageOptions,
    on_notice: &mut dyn FnMut(String),
) -> Result<Vec<PackagedTrack>, PipelineError> {
    let mut order = Vec::new();
    let mut longest: f64 = 0.0;
    for input in inputs {
        let (duration, has_video) = reel_encoder::summary(input)?;
        longest = longest.max(duration);
        order.push((!has_video, input.clone()));
    }
    order.sort_by_key(|(audio_only, _)| *audio_only);
    if longest > 0.0 {
        opts.expected_duration = Some(longest);
    }
    let mut packager = Packager::new(out, opts)?;
    let mut next_id = 1;
    for (audio_only, input) in &order {
        let unannounced = |id: u32| PipelineError::State {
            path: input.clone(),
            detail: format!("sample for track {id}, which was never announced"),
        };
        let mut named_main = false;
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "track".into());
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
                    ids.push((info.id, next_id));
                    info.id = next_id;
                    next_id += 1;
                    packager.add_track(info)?;
                }
                Event::Sample { track, sample } => packager.push(map(&ids, track)?, sample)?,
                Event::TrackEnd { track } => packager.end_track(map(&ids, track)?)?,
                Event::Notice(n) => on_notice(format!("{}: {n}", input.display())),
                Event::Progress(_) | Event::Still { .. } => {}
            }
        }
        if ids.is_empty() {
            return Err(PipelineError::State {
                path: input.clone(),
                detail: "no track to package".into(),
            });
        }
    }
    let tracks = packager.finish()?;
    reel_packager::write_manifests(out, &tracks)?;
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
    /// Track ids in the order they are added, and what each announced.
    expected: Vec<u32>,
    announced: Vec<Option<reel_media::TrackInfo>>,
    /// Samples and track ends that arrived before every track was announced.
    waiting: Vec<Event>,
}

impl LivePackage {
    /// `order` lists the plan's track ids, video before audio.
    pub(crate) fn new(
        out: &Path,
        opts: PackageOptions,
        order: Vec<u32>,
    ) -> Result<Self, PipelineError> {
        Ok(Self {
            packager: Some(Packager::new(out, opts)?),
            announced: vec![None; order.len()],
            expected: order,
            waiting: Vec::new(),
        })
    }

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
                    let slot = self
                        .expected
                        .iter()
                        .position(|&id| id == info.id)
                        .ok_or_else(|| reel_packager::PackagerError::InvalidTrack {
                            track: info.id,
                            problem: format!("{}: a track the plan does not have", info.name),
                        })?;
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
            Event::Sample { .. } | Event::TrackEnd { .. } => self.forward(event.clone()),
            _ => Ok(()),
        }
    }

    fn forward(&mut self, event: Event) -> Result<(), PipelineError> {
        let id = |track: u32| -> Result<u32, PipelineError> {
            self.expected
                .iter()
                .position(|&e| e == track)
                .map(|i| i as u32 + 1)
                .ok_or_else(|| {
                    reel_packager::PackagerError::InvalidTrack {
                        track,
                        problem: "a sample for a track the plan does not have".into(),
                    }
                    .into()
                })
        };
        match event {
            Event::Sample { track, sample } => {
                let id = id(track)?;
                self.packager().push(id, sample)?
            }
            Event::TrackEnd { track } => {
                let id = id(track)?;
                self.packager().end_track(id)?
            }
            _ => {}
        }
        Ok(())
    }

    /// The last segments, init segments and manifests; what the title record needs.
    pub(crate) fn finish(mut self, out: &Path) -> Result<Vec<PackagedTrack>, PipelineError> {
        if !self.started() {
            return Err(PipelineError::State {
                path: out.to_path_buf(),
                detail: "the encode ended before every rendition had started".into(),
            });
        }
        let tracks = self.packager.take().expect("finished once").finish()?;
        reel_packager::write_manifests(out, &tracks)?;
        Ok(tracks)
    }
}
