//! The title's audio tracks besides its main audio (`[[audio]]`): dubbed dialogue,
//! commentary, audio description, each from a stream of the source or from a file of its own,
//! probed, named and planned as an audio-only encode (one unit each).

use crate::PipelineError;
use reel_encoder::{AudioInput, EncodePlan, Ladder};
use reel_media::AudioRole;
use std::path::{Path, PathBuf};

/// An `[[audio]]` entry, checked: the file (`None` for the title's source), which of its audio
/// streams (0 for the first), the language when given (as tracks carry it:
/// `Language::track_language`), and the role.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AudioTrackInput {
    pub file: Option<PathBuf>,
    pub stream: usize,
    pub language: Option<String>,
    pub role: AudioRole,
    /// What players list, when the entry names it (checked by `reel_media::track_title`).
    pub title: Option<String>,
}

/// One more audio track of the title, planned.
pub(crate) struct ExtraAudio {
    /// Its renditions, alone (the source is the file it is read from).
    pub plan: EncodePlan,
    /// What its renditions are made from besides the ladder: the entry and its file's
    /// identity (path, size, time), so that a changed file or entry is encoded again.
    pub made_from: String,
}

/// Plans every `[[audio]]` entry of `job` beside `title` (the title's plan, whose IDs and
/// rendition names the new tracks follow; a notice joins its notices when the source has
/// audio tracks no entry names), encoded as `ladder` says audio is. Renditions are
/// named `audio_LANG_ROLE` (`audio_deu_dub`; `_2` and so on when two entries would share a
/// name). An error names the entry and the file: a file without the track, a track without a
/// language tag and none given, a ladder without audio.
pub(crate) fn plan_extra_audio(
    job: &crate::Job,
    base: &Path,
    title: &mut EncodePlan,
    ladder: &Ladder,
) -> Result<Vec<ExtraAudio>, PipelineError> {
    title.notices.extend(unused_source_tracks(job, title));
    let mut planned: Vec<ExtraAudio> = Vec::new();
    let mut names: Vec<String> = title.audio.iter().map(|a| a.name.clone()).collect();
    for (i, spec) in job.audio.iter().enumerate() {
        let entry = |detail: String| PipelineError::Unsupported(format!("audio[{i}] {detail}"));
        if ladder.audio.is_none() {
            return Err(entry(
                "the ladder encodes no audio (it has no [audio])".into(),
            ));
        }
        let input = spec.input(base).map_err(entry)?;
        let source = match &input.file {
            Some(file) => reel_encoder::probe(file)?,
            None => title.source.clone(),
        };
        let language = match (&input.language, source.audio_streams().nth(input.stream)) {
            (Some(l), _) => l.clone(),
            (None, Some(stream)) => stream
                .language
                .as_deref()
                .and_then(reel_media::language::iso639_2t)
                .ok_or_else(|| {
                    entry(format!(
                        "({}): audio track {} has no language tag; give language",
                        source.path.display(),
                        input.stream + 1
                    ))
                })?,
            // The plan says the file has no such track.
            (None, None) => "und".into(),
        };
        let stem = format!("audio_{language}_{}", input.role.name());
        let name = (1..)
            .map(|n| match n {
                1 => stem.clone(),
                n => format!("{stem}_{n}"),
            })
            .find(|n| !names.iter().any(|o| o == n || *o == format!("{n}_51")))
            .expect("some suffix is free");
        let taken = planned
            .iter()
            .flat_map(|p| p.plan.audio.iter().map(|a| a.track_id))
            .max()
            .unwrap_or(0);
        let audio = AudioInput {
            stream: input.stream,
            role: input.role,
            language: Some(language),
            name,
            title: input.title.clone(),
        };
        let plan = title.audio_input(source, &audio, ladder, taken)?;
        names.extend(plan.audio.iter().map(|a| a.name.clone()));
        planned.push(ExtraAudio {
            made_from: made_from(spec, &plan.source.path),
            plan,
        });
    }
    Ok(planned)
}

/// The fingerprint of an entry and its file's identity (the source's is the title's).
fn made_from(spec: &crate::job::AudioTrackSpec, file: &Path) -> String {
    crate::job::fingerprint(&serde_json::json!({
        "entry": spec,
        "file": file,
        "identity": crate::job::file_identity(file).ok(),
    }))
}

/// A notice when the source has audio tracks the job leaves out (only its first is the main
/// audio; `[[audio]]` entries name the others).
fn unused_source_tracks(job: &crate::Job, title: &EncodePlan) -> Option<String> {
    let count = title.source.audio_streams().count();
    let used: Vec<usize> = job
        .audio
        .iter()
        .filter(|a| a.path.is_none())
        .filter_map(|a| a.track)
        .collect();
    let unused: Vec<String> = (2..=count)
        .filter(|t| !used.contains(t))
        .map(|t| t.to_string())
        .collect();
    (!unused.is_empty()).then(|| {
        format!(
            "the source has {count} audio tracks and only the first is the main audio: tracks \
             {} are left out (an [[audio]] entry with track = N and a role packages one)",
            unused.join(", ")
        )
    })
}

/// An encoded audio file for `reel package`, with the language, role and (optionally) name
/// to give its audio track: `LANGUAGE[,ROLE[,NAME]]=FILE` (`de,dub=de.m4a`,
/// `en,commentary,Director's commentary=c.mp4`).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFile {
    pub path: PathBuf,
    pub language: reel_text::Language,
    pub role: AudioRole,
    /// What players list; derived from language and role when `None`.
    pub title: Option<String>,
}

impl AudioFile {
    /// The name of its track in the package: `audio_LANG_ROLE`, as jobs name theirs.
    pub fn track_name(&self) -> String {
        format!(
            "audio_{}_{}",
            self.language.track_language(),
            self.role.name()
        )
    }
}

impl std::str::FromStr for AudioFile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let file = crate::tagged_file::TaggedFile::parse(
            text,
            "LANGUAGE[,ROLE[,NAME]]=FILE, e.g. de,dub=audio_de.mp4",
        )?;
        let role = match file.what {
            None => AudioRole::Dub,
            Some(role) => AudioRole::from_name(role).ok_or_else(|| {
                format!("'{text}': role '{role}' is not main, dub, commentary or description")
            })?,
        };
        Ok(AudioFile {
            path: file.path,
            language: file.language,
            role,
            title: file.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_files_are_read_from_the_command_line() {
        let a: AudioFile = "de,description=ad.m4a".parse().unwrap();
        assert_eq!(
            (a.language.iso639_2.as_str(), a.role, a.track_name()),
            (
                "deu",
                AudioRole::Description,
                "audio_deu_description".into()
            )
        );
        let dub: AudioFile = "pt-BR=pt.m4a".parse().unwrap();
        assert_eq!((dub.role, dub.title), (AudioRole::Dub, None));
        let named: AudioFile = "en,commentary, Director's commentary =c.mp4"
            .parse()
            .unwrap();
        assert_eq!(named.title.as_deref(), Some("Director's commentary"));
        for (bad, says) in [
            ("de.m4a", "expected LANGUAGE[,ROLE[,NAME]]=FILE"),
            ("en,dub,The \"best\" dub=a.m4a", "double quote"),
            ("de,director=a.m4a", "role 'director'"),
            ("deutsch=a.m4a", "deutsch"),
            ("de=", "no file"),
        ] {
            let e = bad.parse::<AudioFile>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
