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
