//! `run`: one job from source to published title, resumable from its work folder.

use crate::record::renditions;
use crate::state::{EncodeRecord, Finished, State};
use crate::{io_error, Job, PipelineError};
use reel_drm::read_cpix;
use reel_encoder::{EncodePlan, Event, Ladder, Progress};
use reel_media::TitleRecord;
use reel_packager::{FragmentPolicy, FragmentedMp4File, PackageOptions, Protection};
use reel_publish::{
    content_type_for, publish, Destination, EarlyUploads, Journal, ObjectStore, PublishEvent,
    PublishOptions, Tier, Upload,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Analyze,
    Encode,
    Package,
    Publish,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Analyze => "analyze",
            Phase::Encode => "encode",
            Phase::Package => "package",
            Phase::Publish => "publish",
        }
    }
}

/// What a run reports as it goes, for a caller to render.
#[derive(Debug, Clone)]
pub enum PipelineEvent {
    PhaseStarted(Phase),
    /// A phase had nothing to do, and why.
    PhaseSkipped {
        phase: Phase,
        why: String,
    },
    PhaseDone {
        phase: Phase,
        seconds: f64,
    },
    /// Per-title analysis: trials done of those planned.
    AnalysisProgress {
        done: usize,
        planned: usize,
    },
    /// The renditions this run encodes (the others are done), and the frames to go.
    EncodePlanned {
        renditions: Vec<(u32, String)>,
        frames_total: u64,
    },
    EncodeProgress(Progress),
    RenditionDone {
        name: String,
        bytes: u64,
    },
    Publish(PublishEvent),
    Notice(String),
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Set it (from a Ctrl-C handler, say) to stop at the next safe point; the work folder
    /// stays consistent and the next run resumes.
    pub cancel: Arc<AtomicBool>,
}

/// What a run did and where the title is.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub title: String,
    pub location: String,
    /// Where players find the manifests.
    pub dash_url: String,
    pub hls_url: String,
    pub renditions: Vec<crate::Rendition>,
    /// Renditions encoded by this run, and those a previous run had finished.
    pub encoded: Vec<String>,
    pub reused: Vec<String>,
    pub packaged: bool,
    pub uploaded: usize,
    pub already_published: usize,
    pub bytes_uploaded: u64,
    /// The CPIX file with the keys (never published), when encrypted.
    pub keys_file: Option<PathBuf>,
    pub work_dir: PathBuf,
    /// True when everything was already done: nothing changed.
    pub nothing_to_do: bool,
    pub phase_seconds: BTreeMap<String, f64>,
    pub seconds: f64,
}

fn cancelled(opts: &RunOptions) -> Result<(), PipelineError> {
    if opts.cancel.load(Ordering::Relaxed) {
        Err(PipelineError::Cancelled)
    } else {
        Ok(())
    }
}

/// Runs `job` (relative paths against `base`, the job file's folder).
pub fn run(
    job: &Job,
    base: &Path,
    opts: &RunOptions,
    on_event: &mut dyn FnMut(PipelineEvent),
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    job.validate().map_err(|detail| PipelineError::Job {
        path: base.to_path_buf(),
        detail,
    })?;
    let source = base.join(&job.title.source);
    if !source.is_file() {
        return Err(PipelineError::Io {
            path: source.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "source not found"),
        });
    }
    let work = job.work_dir(base);
    std::fs::create_dir_all(&work).map_err(io_error(&work))?;
    let mut state = State::load(&work)?;
    state.runs += 1;
    let run_id = state.runs;
    let fingerprint = job.encode_fingerprint(&source)?;
    let renditions_dir = work.join("renditions");
    if state.encode_fingerprint != fingerprint {
        if !state.encode_fingerprint.is_empty() {
            on_event(PipelineEvent::Notice(
                "the source, ladder or analysis options changed: starting the title over".into(),
            ));
        }
        let runs = state.runs;
        state = State {
            runs,
            encode_fingerprint: fingerprint,
            ..State::default()
        };
        let _ = std::fs::remove_dir_all(&renditions_dir);
    }
    state.save(&work)?;
    let mut phase_seconds = BTreeMap::new();

    // The ladder: analysed once, then kept in the state.
    let ladder = match state.ladder.clone() {
        Some(l) => {
            on_event(PipelineEvent::PhaseSkipped {
                phase: Phase::Analyze,
                why: "the ladder was chosen by an earlier run".into(),
            });
            l
        }
        None => {
            let t = Instant::now();
            let l = choose_ladder(job, base, &source, &work, on_event)?;
            phase_seconds.insert("analyze".into(), t.elapsed().as_secs_f64());
            state.ladder = Some(l.clone());
            state.save(&work)?;
            l
        }
    };
    cancelled(opts)?;

    // Encode what is not finished.
    let t = Instant::now();
    let probe = reel_encoder::probe(&source)?;
    let mut plan = EncodePlan::new(probe, &ladder)?;
    // The poster comes from this encode's decode, not from a second one.
    plan.still_at = Some(crate::poster_frame(plan.frames_total));
    for n in &plan.notices {
        on_event(PipelineEvent::Notice(n.clone()));
    }
    let mut wanted: Vec<String> = plan.rungs.iter().map(|r| r.name.clone()).collect();
    wanted.extend(plan.audio.iter().map(|a| a.name.clone()));
    let done = |name: &str, state: &State| {
        state.finished.get(name).is_some_and(|f| {
            std::fs::metadata(renditions_dir.join(&f.file)).is_ok_and(|m| m.len() == f.bytes)
        })
    };
    let keys_file = job.encryption.as_ref().map(|e| e.key_file(base, &work));
    let package_dir = work.join(PACKAGE_DIR);
    let package_tmp = work.join(PACKAGE_TMP);
    // The title's encryption (keys generated into the key file on first use).
    let title_protection = || -> Result<Option<Protection>, PipelineError> {
        job.encryption
            .as_ref()
            .map(|e| {
                e.settings(&job.title.id, keys_file.as_ref().expect("set"))
                    .build()
                    .map_err(PipelineError::from)
            })
            .transpose()
    };
    let store: Arc<dyn ObjectStore> = open_store(job, base, &work)?.into();
    let journal_path = work.join("published.jsonl");
    // The journal, once segments published during the encode have been recorded in it.
    let mut journal: Option<Journal> = None;
    let mut early_report = reel_publish::EarlyReport::default();
    let reused: Vec<String> = wanted.iter().filter(|n| done(n, &state)).cloned().collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|n| !done(n, &state))
        .cloned()
        .collect();
    let mut encoded = Vec::new();
    let package_fingerprint = |state: &State| {
        crate::job::fingerprint(&serde_json::json!({
            "job": job.package_fingerprint(),
            "title": [&job.title.id, &job.title.name, &job.title.metadata],
            "renditions": wanted.iter().map(|n| &state.finished[n].sha256).collect::<Vec<_>>(),
            "keys": keys_file.as_ref().map(|k| key_ids(k).unwrap_or_default()),
        }))
    };
    // The package being made during the encode, when this run encodes every rendition.
    let mut live = None;
    if missing.is_empty() {
        on_event(PipelineEvent::PhaseSkipped {
            phase: Phase::Encode,
            why: format!(
                "all {} renditions were finished by earlier runs",
                wanted.len()
            ),
        });
    } else {
        on_event(PipelineEvent::PhaseStarted(Phase::Encode));
        plan.rungs.retain(|r| missing.contains(&r.name));
        plan.audio.retain(|a| missing.contains(&a.name));
        on_event(PipelineEvent::EncodePlanned {
            renditions: plan
                .rungs
                .iter()
                .map(|r| (r.track_id, r.name.clone()))
                .collect(),
            frames_total: plan.frames_total,
        });
        std::fs::create_dir_all(&renditions_dir).map_err(io_error(&renditions_dir))?;
        // When every rendition is encoded now, the package is built from the encoders' samples
        // as they arrive (the renditions are still kept, to package again without encoding).
        // A run that reuses renditions packages them all from their files below.
        if reused.is_empty() {
            let protection = title_protection()?;
            let _ = std::fs::remove_dir_all(&package_tmp);
            let mut order: Vec<u32> = plan.rungs.iter().map(|r| r.track_id).collect();
            order.extend(plan.audio.iter().map(|a| a.track_id));
            let expected = Some(plan.source.duration).filter(|d| *d > 0.0);
            // Segments are published as they are written; the publish step below finds them
            // in the journal. Manifests still go up last, after everything they name.
            let early = EarlyUploads::start(
                store.clone(),
                Journal::open(&journal_path)?,
                job.destination.parallel_uploads,
            );
            live = Some(crate::package::LivePackage::new(
                &package_tmp,
                package_options(job, protection, expected),
                order,
                Some(early),
            )?);
        }
        encode_missing(
            plan,
            &renditions_dir,
            &work,
            &mut state,
            run_id,
            opts,
            live.as_mut(),
            &mut encoded,
            on_event,
        )?;
        let secs = t.elapsed().as_secs_f64();
        phase_seconds.insert("encode".into(), secs);
        on_event(PipelineEvent::PhaseDone {
            phase: Phase::Encode,
            seconds: secs,
        });
    }
    cancelled(opts)?;

    // Package (and encrypt): finish the package made during the encode, or package the
    // renditions when they or the packaging changed.
    let t = Instant::now();
    let mut packaged = false;
    if live.is_none()
        && state.package.as_deref() == Some(package_fingerprint(&state).as_str())
        && package_dir.join(TITLE_RECORD).is_file()
    {
        on_event(PipelineEvent::PhaseSkipped {
            phase: Phase::Package,
            why: "the package from an earlier run is up to date".into(),
        });
    } else {
        on_event(PipelineEvent::PhaseStarted(Phase::Package));
        let tracks = match live.take() {
            Some(live) => {
                let crate::package::LiveOutcome { tracks, early } = live.finish()?;
                if let Some((j, mut report)) = early {
                    journal = Some(j);
                    for e in std::mem::take(&mut report.events) {
                        on_event(PipelineEvent::Publish(e));
                    }
                    if let Some(e) = &report.error {
                        on_event(PipelineEvent::Notice(format!(
                            "publishing segments during the encode stopped ({e}); the publish \
                             step sends the rest"
                        )));
                    }
                    early_report = report;
                }
                tracks
            }
            None => {
                let protection = title_protection()?;
                let inputs: Vec<PathBuf> = wanted
                    .iter()
                    .map(|n| renditions_dir.join(&state.finished[n].file))
                    .collect();
                let _ = std::fs::remove_dir_all(&package_tmp);
                crate::package_files(
                    &inputs,
                    &package_tmp,
                    package_options(job, protection, None),
                    &mut |n| on_event(PipelineEvent::Notice(n)),
                )?
            }
        };
        complete_package(job, &source, &work, &renditions_dir, &tracks, on_event)?;
        // Now that the keys exist (a fresh key file changes the fingerprint).
        state.package = Some(package_fingerprint(&state));
        state.save(&work)?;
        packaged = true;
        let secs = t.elapsed().as_secs_f64();
        phase_seconds.insert("package".into(), secs);
        on_event(PipelineEvent::PhaseDone {
            phase: Phase::Package,
            seconds: secs,
        });
    }
    cancelled(opts)?;

    // Publish: media, playlists, manifests, then the title record.
    let t = Instant::now();
    let record: TitleRecord = {
        let p = package_dir.join(TITLE_RECORD);
        let bytes = std::fs::read(&p).map_err(io_error(&p))?;
        serde_json::from_slice(&bytes).map_err(|e| PipelineError::State {
            path: p,
            detail: e.to_string(),
        })?
    };
    let uploads = uploads(&package_dir, &record)?;
    let mut journal = match journal {
        Some(j) => j,
        None => Journal::open(&journal_path)?,
    };
    on_event(PipelineEvent::PhaseStarted(Phase::Publish));
    let popts = PublishOptions {
        parallel: job.destination.parallel_uploads,
        cancel: Some(opts.cancel.clone()),
    };
    let report = publish(store.as_ref(), &uploads, &mut journal, &popts, &mut |e| {
        on_event(PipelineEvent::Publish(e))
    })
    .map_err(|e| match e {
        reel_publish::PublishError::Cancelled => PipelineError::Cancelled,
        other => other.into(),
    })?;
    let secs = t.elapsed().as_secs_f64();
    phase_seconds.insert("publish".into(), secs);
    on_event(PipelineEvent::PhaseDone {
        phase: Phase::Publish,
        seconds: secs,
    });

    let (dash_url, hls_url) = urls(job, base, store.as_ref(), &record);
    Ok(RunSummary {
        title: job.title.id.clone(),
        location: store.location(),
        dash_url,
        hls_url,
        renditions: record.renditions,
        nothing_to_do: encoded.is_empty() && !packaged && report.uploaded == 0,
        encoded,
        reused,
        packaged,
        // Segments published during the encode are counted there, not as already published.
        uploaded: report.uploaded + early_report.uploaded,
        already_published: report.skipped.saturating_sub(early_report.uploaded),
        bytes_uploaded: report.bytes_uploaded + early_report.bytes_uploaded,
        keys_file,
        work_dir: work,
        phase_seconds,
        seconds: started.elapsed().as_secs_f64(),
    })
}

const TITLE_RECORD: &str = "title.json";
/// The finished package in the work folder, and where it is made.
const PACKAGE_DIR: &str = "package";
const PACKAGE_TMP: &str = "package.tmp";
const ANALYSIS_REPORT: &str = "analysis.json";

/// Encodes the plan's renditions; each file is finished (renamed into place) and recorded in
/// the state the moment its track ends, so a later crash keeps it. With `live`, the samples
/// are packaged (and encrypted) too, as they arrive.
#[allow(clippy::too_many_arguments)]
fn encode_missing(
    plan: EncodePlan,
    dir: &Path,
    work: &Path,
    state: &mut State,
    run_id: u32,
    opts: &RunOptions,
    mut live: Option<&mut crate::package::LivePackage>,
    encoded: &mut Vec<String>,
    on_event: &mut dyn FnMut(PipelineEvent),
) -> Result<(), PipelineError> {
    let mut writers: Vec<(u32, String, FragmentedMp4File)> = Vec::new();
    let source = plan.source.clone();
    let stream = plan.start()?;
    for event in stream {
        cancelled(opts)?;
        let event = event?;
        if let Some(live) = live.as_deref_mut() {
            live.on_event(&event)?;
            for e in live.publish_events() {
                on_event(PipelineEvent::Publish(e));
            }
        }
        match event {
            Event::Track(info) => {
                let name = info.name.clone();
                let file = dir.join(format!("{}.mp4", reel_packager::safe_file_name(&name)));
                let id = info.id;
                writers.push((
                    id,
                    name,
                    FragmentedMp4File::create(&file, info, FragmentPolicy::default())?,
                ));
            }
            Event::Sample { track, sample } => {
                let w = writers.iter_mut().find(|w| w.0 == track).ok_or_else(|| {
                    PipelineError::State {
                        path: dir.to_path_buf(),
                        detail: format!("sample for unannounced track {track}"),
                    }
                })?;
                w.2.push(sample)?;
            }
            Event::TrackEnd { track } => {
                let Some(i) = writers.iter().position(|w| w.0 == track) else {
                    continue;
                };
                let (_, name, writer) = writers.swap_remove(i);
                let file = format!("{}.mp4", reel_packager::safe_file_name(&name));
                writer.finish()?;
                let path = dir.join(&file);
                let (sha256, bytes) = reel_publish::file_sha256(&path)?;
                state.finished.insert(
                    name.clone(),
                    Finished {
                        file,
                        sha256,
                        bytes,
                    },
                );
                state.encodes.push(EncodeRecord {
                    rendition: name.clone(),
                    run: run_id,
                });
                state.save(work)?;
                on_event(PipelineEvent::RenditionDone {
                    name: name.clone(),
                    bytes,
                });
                encoded.push(name);
            }
            Event::Progress(p) => on_event(PipelineEvent::EncodeProgress(p)),
            Event::Notice(n) => on_event(PipelineEvent::Notice(n)),
            Event::Still { picture, .. } => {
                let Some(video) = source.video() else {
                    continue;
                };
                match crate::poster_from_picture(&picture, video) {
                    Ok(jpeg) => {
                        let path = dir.join(crate::POSTER_FILE);
                        let tmp = dir.join(format!(".{}.tmp", crate::POSTER_FILE));
                        std::fs::write(&tmp, jpeg).map_err(io_error(&tmp))?;
                        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
                    }
                    Err(e) => on_event(PipelineEvent::Notice(format!("no poster frame: {e}"))),
                }
            }
        }
    }
    if let Some((_, name, _)) = writers.first() {
        return Err(PipelineError::State {
            path: dir.to_path_buf(),
            detail: format!("the encoder stopped before rendition {name} ended"),
        });
    }
    Ok(())
}

/// The package's options for `job`.
fn package_options(
    job: &Job,
    protection: Option<Protection>,
    expected_duration: Option<f64>,
) -> PackageOptions {
    PackageOptions {
        segment_duration: job.packaging.segment_duration,
        addressing: if job.packaging.single_file {
            reel_packager::Addressing::SingleFile
        } else {
            reel_packager::Addressing::SegmentFiles
        },
        expected_duration,
        protection,
        segment_written: None,
    }
}

/// Puts the title record and the poster beside the packaged `tracks` in `work/package.tmp`,
/// then moves the whole package into `work/package` in one rename.
fn complete_package(
    job: &Job,
    source: &Path,
    work: &Path,
    renditions_dir: &Path,
    tracks: &[reel_packager::PackagedTrack],
    on_event: &mut dyn FnMut(PipelineEvent),
) -> Result<(), PipelineError> {
    let package_tmp = work.join(PACKAGE_TMP);
    let package_dir = work.join(PACKAGE_DIR);
    let mut analysis = std::fs::read(work.join(ANALYSIS_REPORT))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    // The record is public: the source's name, not where it lives on this machine.
    if let Some(path) = analysis
        .as_mut()
        .and_then(|a| a.pointer_mut("/source/path"))
    {
        *path = serde_json::Value::String(
            source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    let predicted = |stem: &str| -> Option<f64> {
        analysis.as_ref()?["rungs"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == stem)?["predicted_vmaf"]
            .as_f64()
    };
    let record = TitleRecord {
        id: job.title.id.clone(),
        name: job.title.name.clone(),
        metadata: job.title.metadata.clone(),
        duration: tracks.iter().map(|t| t.duration_secs()).fold(0.0, f64::max),
        renditions: renditions(tracks, &predicted),
        dash: reel_packager::DASH_MANIFEST.into(),
        hls: reel_packager::HLS_MASTER.into(),
        encryption: job.encryption.as_ref().map(|e| e.scheme),
        drm_systems: job
            .encryption
            .as_ref()
            .map(|e| e.drm.iter().map(|d| d.name().to_string()).collect())
            .unwrap_or_default(),
        ladder: job.ladder.to_string(),
        analysis,
        packaged_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        poster: None,
    };
    // A poster for the catalog (made while encoding, or decoded now when this run encoded
    // nothing); a title without one still publishes.
    let mut record = record;
    let poster = match std::fs::read(renditions_dir.join(crate::POSTER_FILE)) {
        Ok(jpeg) => Ok(jpeg),
        Err(_) => crate::poster_jpeg(source),
    };
    match poster {
        Ok(jpeg) => {
            let path = package_tmp.join(crate::POSTER_FILE);
            std::fs::write(&path, jpeg).map_err(io_error(&path))?;
            record.poster = Some(crate::POSTER_FILE.into());
        }
        Err(e) => on_event(PipelineEvent::Notice(format!("no poster frame: {e}"))),
    }
    let record_path = package_tmp.join(TITLE_RECORD);
    std::fs::write(
        &record_path,
        serde_json::to_vec_pretty(&record).expect("record serializes"),
    )
    .map_err(io_error(&record_path))?;
    let _ = std::fs::remove_dir_all(&package_dir);
    std::fs::rename(&package_tmp, &package_dir).map_err(io_error(&package_dir))?;
    Ok(())
}

/// The ladder the job asks for: analysed per title, built in, or from a file.
fn choose_ladder(
    job: &Job,
    base: &Path,
    source: &Path,
    work: &Path,
    on_event: &mut dyn FnMut(PipelineEvent),
) -> Result<Ladder, PipelineError> {
    let Some(ladder) = job.ladder.load(base)? else {
        return per_title(job, source, work, on_event);
    };
    on_event(PipelineEvent::PhaseSkipped {
        phase: Phase::Analyze,
        why: format!("the job names a ladder: {}", job.ladder),
    });
    Ok(ladder)
}

#[cfg(feature = "vmaf")]
fn per_title(
    job: &Job,
    source: &Path,
    work: &Path,
    on_event: &mut dyn FnMut(PipelineEvent),
) -> Result<Ladder, PipelineError> {
    use reel_ladder::{analyze, AnalyzeEvent, AnalyzeOptions};
    on_event(PipelineEvent::PhaseStarted(Phase::Analyze));
    let t = Instant::now();
    let a = &job.analysis;
    let mut o = AnalyzeOptions::for_codec(a.codec());
    if let Some(v) = a.max_rungs {
        o.constraints.max_rungs = v;
    }
    if let Some(v) = a.ceiling {
        o.constraints.quality_ceiling = v;
    }
    if let Some(v) = a.floor {
        o.constraints.quality_floor = v;
    }
    if let Some(v) = a.max_height {
        o.constraints.max_height = v;
    }
    o.constraints.level = a.level.clone();
    if let Some(v) = a.min_bitrate {
        o.constraints.min_bitrate = v;
    }
    if let Some(v) = a.max_bitrate {
        o.constraints.max_bitrate = v;
    }
    let (mut done, mut planned) = (0, 0);
    let analysis = analyze(source, &o, &mut |e| match e {
        AnalyzeEvent::Planned { trials } => {
            planned = trials;
            done = 0;
            on_event(PipelineEvent::AnalysisProgress { done, planned });
        }
        AnalyzeEvent::TrialDone => {
            done += 1;
            on_event(PipelineEvent::AnalysisProgress { done, planned });
        }
        AnalyzeEvent::Scanning { .. } => {}
    })?;
    if let Some(why) = &analysis.fallback {
        on_event(PipelineEvent::Notice(format!(
            "{}: per-title analysis not used: {why}; the fixed ladder, trimmed to the source, stands in",
            source.display()
        )));
    }
    let report = work.join(ANALYSIS_REPORT);
    std::fs::write(
        &report,
        serde_json::to_vec_pretty(&analysis).expect("analysis serializes"),
    )
    .map_err(io_error(&report))?;
    on_event(PipelineEvent::PhaseDone {
        phase: Phase::Analyze,
        seconds: t.elapsed().as_secs_f64(),
    });
    Ok(analysis.ladder)
}

#[cfg(not(feature = "vmaf"))]
fn per_title(
    _job: &Job,
    _source: &Path,
    _work: &Path,
    _on_event: &mut dyn FnMut(PipelineEvent),
) -> Result<Ladder, PipelineError> {
    Err(PipelineError::Unsupported(
        "per-title ladders need reel-pipeline's `vmaf` feature (the reel binary has it)".into(),
    ))
}

/// Key IDs of a key file (for the package fingerprint), or `None` when it does not exist yet.
fn key_ids(path: &Path) -> Option<Vec<String>> {
    let keys = read_cpix(path).ok()?;
    Some(keys.keys().iter().map(|k| k.kid.to_string()).collect())
}

/// The destination's store. S3 multipart uploads in progress are written down in the work
/// folder, so that a run after a kill aborts the ones left open.
fn open_store(job: &Job, base: &Path, work: &Path) -> Result<Box<dyn ObjectStore>, PipelineError> {
    let dest = match Destination::parse(&job.destination.url)? {
        Destination::Folder(p) => Destination::Folder(base.join(p)),
        s3 => s3,
    };
    let mut s3 = job.destination.s3_options();
    s3.pending_uploads = Some(work.join("multipart-uploads.jsonl"));
    Ok(dest.open(&s3)?)
}

/// Every file of the package, in its tier, with its content type.
fn uploads(package: &Path, record: &TitleRecord) -> Result<Vec<Upload>, PipelineError> {
    let audio: Vec<&str> = record.audio_renditions().collect();
    folder_uploads(package, &|stem| audio.contains(&stem))
}

/// Every file under `folder` (a packaged title) as an upload: `title.json` last, the DASH MPD
/// and HLS master playlist before it, other playlists before those, media first. `is_audio`
/// says whether a track folder (or single file's stem) holds audio, for the content type.
pub fn folder_uploads(
    folder: &Path,
    is_audio: &dyn Fn(&str) -> bool,
) -> Result<Vec<Upload>, PipelineError> {
    let mut out = Vec::new();
    for (key, path) in reel_publish::files_under(folder)? {
        let tier = if key == TITLE_RECORD {
            Tier::Record
        } else if key == reel_packager::DASH_MANIFEST || key == reel_packager::HLS_MASTER {
            Tier::Manifest
        } else if key.ends_with(".m3u8") {
            Tier::Playlist
        } else {
            Tier::Media
        };
        let stem = key
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".mp4");
        out.push(Upload::new(
            &key,
            &path,
            tier,
            content_type_for(&key, is_audio(stem)),
        ));
    }
    // files_under gives them sorted by key.
    Ok(out)
}

fn urls(job: &Job, base: &Path, store: &dyn ObjectStore, record: &TitleRecord) -> (String, String) {
    let root = match Destination::parse(&job.destination.url) {
        Ok(Destination::Folder(p)) => {
            let abs = std::fs::canonicalize(base.join(p)).unwrap_or_default();
            format!("file://{}", abs.display())
        }
        Ok(Destination::S3 { bucket, prefix }) => match &job.destination.endpoint {
            Some(ep) if job.destination.s3_options().path_style => {
                format!("{}/{bucket}/{prefix}", ep.trim_end_matches('/'))
            }
            _ => format!("s3://{bucket}/{prefix}"),
        },
        Err(_) => store.location(),
    };
    let root = root.trim_end_matches('/').to_string();
    (
        format!("{root}/{}", record.dash),
        format!("{root}/{}", record.hls),
    )
}

/// What a run would do, without doing it.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub title: String,
    pub source: PathBuf,
    pub work_dir: PathBuf,
    pub ladder: String,
    /// The encode plan, when the ladder is known (a named ladder, or one an earlier run chose).
    pub plan: Option<EncodePlan>,
    /// Renditions an earlier run finished.
    pub finished: Vec<String>,
    pub segment_duration: f64,
    pub single_file: bool,
    pub encryption: Option<String>,
    pub drm_systems: Vec<String>,
    pub destination: String,
}

/// The plan of `job` (`reel run --dry-run`): probes the source, reads the work folder, starts
/// nothing.
pub fn dry_run(job: &Job, base: &Path) -> Result<DryRun, PipelineError> {
    job.validate().map_err(|detail| PipelineError::Job {
        path: base.to_path_buf(),
        detail,
    })?;
    let source = base.join(&job.title.source);
    let probe = reel_encoder::probe(&source)?;
    let work = job.work_dir(base);
    let state = State::load(&work)?;
    let fresh = job
        .encode_fingerprint(&source)
        .is_ok_and(|f| f == state.encode_fingerprint);
    let ladder = if fresh { state.ladder.clone() } else { None }
        .or_else(|| job.ladder.load(base).ok().flatten());
    let plan = match ladder {
        Some(l) => Some(EncodePlan::new(probe, &l)?),
        None => None,
    };
    Ok(DryRun {
        title: job.title.id.clone(),
        source,
        work_dir: work,
        ladder: job.ladder.to_string(),
        plan,
        finished: if fresh {
            state.finished.keys().cloned().collect()
        } else {
            Vec::new()
        },
        segment_duration: job.packaging.segment_duration,
        single_file: job.packaging.single_file,
        encryption: job.encryption.as_ref().map(|e| e.scheme.name().into()),
        drm_systems: job
            .encryption
            .as_ref()
            .map(|e| e.drm.iter().map(|d| d.name().to_string()).collect())
            .unwrap_or_default(),
        destination: job.destination.url.clone(),
    })
}
