//! `run`: one job from source to published title, resumable from its work folder.

use crate::record::renditions;
use crate::source::local_source;
use crate::state::{EncodeRecord, Finished, State};
use crate::{io_error, Job, PipelineError, SourceLocation};
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
    Measure,
    Package,
    Publish,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Analyze => "analyze",
            Phase::Encode => "encode",
            Phase::Measure => "measure",
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
    /// `[quality] measure`: source frames scored against every rendition so far, of about
    /// `total`.
    MeasureProgress {
        frames: u64,
        total: u64,
    },
    RenditionDone {
        name: String,
        bytes: u64,
    },
    /// A work unit was planned, started, finished or tried again.
    Unit(reel_units::UnitEvent),
    Publish(PublishEvent),
    Notice(String),
}

/// How to run.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Set it (from a Ctrl-C handler, say) to stop at the next safe point; the work folder
    /// stays consistent and the next run resumes.
    pub cancel: Arc<AtomicBool>,
    /// Where the title's units run; `None`: on this machine, `[encode] workers` at a time.
    pub workers: Option<Arc<dyn reel_units::Workers>>,
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

/// Runs `job` (relative paths against `base`, the job file's folder): the ladder, the
/// renditions not yet finished, the package, and the publish, each resumable.
pub fn run(
    job: &Job,
    base: &Path,
    opts: &RunOptions,
    on_event: &mut dyn FnMut(PipelineEvent),
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let mut run = TitleRun::open(job, base, opts, on_event)?;
    let ladder = run.ladder(on_event)?;
    cancelled(opts)?;
    let mut encode = run.encode(&ladder, on_event)?;
    cancelled(opts)?;
    run.measure(&ladder, on_event)?;
    cancelled(opts)?;
    let package = run.package(&mut encode, on_event)?;
    cancelled(opts)?;
    let published = run.publish(package, on_event)?;
    Ok(run.summary(encode, published, started))
}

/// One run of a job: where its files are, and the state kept between runs.
struct TitleRun<'a> {
    job: &'a Job,
    base: &'a Path,
    opts: &'a RunOptions,
    source: PathBuf,
    work: PathBuf,
    renditions_dir: PathBuf,
    package_dir: PathBuf,
    package_tmp: PathBuf,
    journal_path: PathBuf,
    /// The CPIX file with the keys, when encrypted.
    keys_file: Option<PathBuf>,
    state: State,
    run_id: u32,
    store: Arc<dyn ObjectStore>,
    phase_seconds: BTreeMap<String, f64>,
    /// What each `[[audio]]` rendition is made from, by name (see [`Finished::made_from`]).
    made_from: BTreeMap<String, String>,
    /// The video rendition whose key frames make the trick-play track, when the job asks.
    trick_play: Option<String>,
}

/// What the encode step leaves for the package step.
struct EncodeOutcome {
    /// Every rendition of the title, in package order.
    wanted: Vec<String>,
    encoded: Vec<String>,
    reused: Vec<String>,
    /// The package made from the encoders' samples, when this run encoded every rendition.
    live: Option<crate::package::LivePackage>,
}

/// What the package step leaves for the publish step.
struct PackageOutcome {
    packaged: bool,
    /// The journal, when segments were published during the encode.
    journal: Option<Journal>,
    early: reel_publish::EarlyReport,
}

/// What the publish step did.
struct Published {
    record: TitleRecord,
    report: reel_publish::PublishReport,
    packaged: bool,
    early: reel_publish::EarlyReport,
}

impl<'a> TitleRun<'a> {
    /// Checks the job, finds the source, and loads the work folder's state; a changed
    /// source, ladder or analysis starts the title over.
    fn open(
        job: &'a Job,
        base: &'a Path,
        opts: &'a RunOptions,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Result<Self, PipelineError> {
        job.validate().map_err(|detail| PipelineError::Job {
            path: base.to_path_buf(),
            detail,
        })?;
        let work = job.work_dir(base);
        std::fs::create_dir_all(&work).map_err(io_error(&work))?;
        let source = local_source(&source_location(job, base)?, &work, &mut |n| {
            on_event(PipelineEvent::Notice(n))
        })?;
        let renditions_dir = work.join("renditions");
        let mut state = State::load(&work)?;
        state.runs += 1;
        let fingerprint = job.encode_fingerprint(&source)?;
        if state.encode_fingerprint != fingerprint {
            if !state.encode_fingerprint.is_empty() {
                on_event(PipelineEvent::Notice(
                    "the source, ladder or analysis options changed: starting the title over"
                        .into(),
                ));
            }
            state = State {
                runs: state.runs,
                encode_fingerprint: fingerprint,
                ..State::default()
            };
            let _ = std::fs::remove_dir_all(&renditions_dir);
        }
        state.save(&work)?;
        Ok(TitleRun {
            job,
            base,
            opts,
            keys_file: job.encryption.as_ref().map(|e| e.key_file(base, &work)),
            store: open_store(job, base, &work)?.into(),
            run_id: state.runs,
            state,
            source,
            renditions_dir,
            package_dir: work.join(PACKAGE_DIR),
            package_tmp: work.join(PACKAGE_TMP),
            journal_path: work.join("published.jsonl"),
            work,
            phase_seconds: BTreeMap::new(),
            made_from: BTreeMap::new(),
            trick_play: None,
        })
    }

    /// The ladder: analysed (or read) once, then kept in the state.
    fn ladder(&mut self, on_event: &mut dyn FnMut(PipelineEvent)) -> Result<Ladder, PipelineError> {
        if let Some(l) = self.state.ladder.clone() {
            on_event(PipelineEvent::PhaseSkipped {
                phase: Phase::Analyze,
                why: "the ladder was chosen by an earlier run".into(),
            });
            return Ok(l);
        }
        let t = Instant::now();
        let l = choose_ladder(self.job, self.base, &self.source, &self.work, on_event)?;
        self.phase_seconds
            .insert("analyze".into(), t.elapsed().as_secs_f64());
        self.state.ladder = Some(l.clone());
        self.state.save(&self.work)?;
        Ok(l)
    }

    /// Whether rendition `name` is finished: recorded, made from what it would be made from
    /// now, and its file whole.
    fn is_finished(&self, name: &str) -> bool {
        self.state.finished.get(name).is_some_and(|f| {
            f.made_from.as_ref() == self.made_from.get(name)
                && std::fs::metadata(self.renditions_dir.join(&f.file))
                    .is_ok_and(|m| m.len() == f.bytes)
        })
    }

    /// The title's encryption (keys generated into the key file on first use).
    fn protection(&self) -> Result<Option<Protection>, PipelineError> {
        let (Some(e), Some(keys_file)) = (&self.job.encryption, &self.keys_file) else {
            return Ok(None);
        };
        Ok(Some(e.settings(&self.job.title.id, keys_file).build()?))
    }

    /// What decides the package beyond the job: the renditions' contents and the key IDs.
    fn package_fingerprint(&self, wanted: &[String]) -> String {
        crate::job::fingerprint(&serde_json::json!({
            "job": self.job.package_fingerprint(self.base),
            "title": [&self.job.title.id, &self.job.title.name, &self.job.title.metadata],
            "renditions": wanted.iter().map(|n| &self.state.finished[n].sha256).collect::<Vec<_>>(),
            "keys": self.keys_file.as_ref().map(|k| key_ids(k).unwrap_or_default()),
            "thumbnails": self.job.thumbnails.enabled.then(|| {
                crate::ThumbnailSprites::load(&self.renditions_dir, &self.job.thumbnails)
                    .ok()
                    .map(|t| t.fingerprint())
            }),
        }))
    }

    /// Encodes the renditions not finished by earlier runs. When it encodes all of them, the
    /// package is made from the encoders' samples as they arrive, and its segments published
    /// as they are written.
    fn encode(
        &mut self,
        ladder: &Ladder,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Result<EncodeOutcome, PipelineError> {
        let t = Instant::now();
        let mut plan = EncodePlan::new(reel_encoder::probe(&self.source)?, ladder)?;
        // The poster comes from this encode's decode, not from a second one.
        plan.still_at = Some(crate::poster_frame(plan.frames_total));
        // So do the thumbnails.
        plan.thumbnails = self.job.thumbnails.plan(&plan);
        self.trick_play = self
            .job
            .packaging
            .trick_play
            .then(|| trick_play_source(&plan.rungs))
            .flatten();
        let mut extras = crate::audio::plan_extra_audio(self.job, self.base, &mut plan, ladder)?;
        for n in &plan.notices {
            on_event(PipelineEvent::Notice(n.clone()));
        }
        for extra in &extras {
            for a in &extra.plan.audio {
                self.made_from
                    .insert(a.name.clone(), extra.made_from.clone());
            }
        }
        let mut wanted: Vec<String> = plan.rungs.iter().map(|r| r.name.clone()).collect();
        wanted.extend(plan.audio.iter().map(|a| a.name.clone()));
        wanted.extend(
            extras
                .iter()
                .flat_map(|e| e.plan.audio.iter().map(|a| a.name.clone())),
        );
        let (reused, missing): (Vec<String>, Vec<String>) =
            wanted.iter().cloned().partition(|n| self.is_finished(n));
        let mut outcome = EncodeOutcome {
            wanted,
            encoded: Vec::new(),
            reused,
            live: None,
        };
        if missing.is_empty() {
            on_event(PipelineEvent::PhaseSkipped {
                phase: Phase::Encode,
                why: format!(
                    "all {} renditions were finished by earlier runs",
                    outcome.wanted.len()
                ),
            });
            return Ok(outcome);
        }
        on_event(PipelineEvent::PhaseStarted(Phase::Encode));
        plan.rungs.retain(|r| missing.contains(&r.name));
        plan.audio.retain(|a| missing.contains(&a.name));
        for extra in &mut extras {
            extra.plan.audio.retain(|a| missing.contains(&a.name));
        }
        extras.retain(|e| !e.plan.audio.is_empty());
        on_event(PipelineEvent::EncodePlanned {
            renditions: plan
                .rungs
                .iter()
                .map(|r| (r.track_id, r.name.clone()))
                .collect(),
            frames_total: plan.frames_total,
        });
        std::fs::create_dir_all(&self.renditions_dir).map_err(io_error(&self.renditions_dir))?;
        // A run that reuses renditions packages them all from their files instead.
        if outcome.reused.is_empty() {
            outcome.live = Some(self.live_package(&plan, &extras)?);
        }
        let units = self.units(plan, extras)?;
        self.encode_missing(units, outcome.live.as_mut(), &mut outcome.encoded, on_event)?;
        self.phase_done(Phase::Encode, t, on_event);
        Ok(outcome)
    }

    /// The plan as work units (the audio, each `[[audio]]` track, and the video in chunks on
    /// segment boundaries), running on the local pool or the workers the options name: the
    /// units earlier runs finished are reused.
    fn units(
        &mut self,
        plan: EncodePlan,
        extras: Vec<crate::audio::ExtraAudio>,
    ) -> Result<reel_units::ChunkedEncode, PipelineError> {
        let source_id = self.source_sha256()?;
        let spec = &self.job.encode;
        let chunk = reel_units::chunk_frames(
            &plan,
            self.job.packaging.segment_duration,
            spec.chunk_duration,
        );
        let chunks =
            reel_units::chunks(plan.frames_total, chunk, reel_units::lead_in_frames(&plan));
        let mut units = reel_units::title_units(&plan, &chunks, &source_id)?;
        for extra in extras {
            let id = if extra.plan.source.path == plan.source.path {
                source_id.clone()
            } else {
                reel_publish::file_sha256(&extra.plan.source.path)?.0
            };
            units.push(reel_units::audio_unit(extra.plan, &id)?);
        }
        let store = reel_units::UnitStore::open(&self.work.join(UNITS_DIR))?;
        let workers = self.opts.workers.clone().unwrap_or_else(|| {
            let n = spec.workers.unwrap_or_else(|| {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                reel_units::units_at_once(plan.rungs.len(), cores)
            });
            Arc::new(reel_units::LocalWorkers(n)) as Arc<dyn reel_units::Workers>
        });
        let opts = reel_units::ChunkedOptions {
            workers,
            cancel: self.opts.cancel.clone(),
        };
        Ok(reel_units::ChunkedEncode::start(plan, units, store, &opts)?)
    }

    /// The source's SHA-256, hashed once for its identity (path, size, time) and kept.
    fn source_sha256(&mut self) -> Result<String, PipelineError> {
        if let Some(h) = &self.state.source_sha256 {
            return Ok(h.clone());
        }
        let (hash, _) = reel_publish::file_sha256(&self.source)?;
        self.state.source_sha256 = Some(hash.clone());
        self.state.save(&self.work)?;
        Ok(hash)
    }

    /// Encodes the plan's renditions; each file is finished (renamed into place) and recorded in
    /// the state the moment its track ends, so a later crash keeps it. With `live`, the samples
    /// are packaged (and encrypted) too, as they arrive.
    fn encode_missing(
        &mut self,
        units: reel_units::ChunkedEncode,
        mut live: Option<&mut crate::package::LivePackage>,
        encoded: &mut Vec<String>,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Result<(), PipelineError> {
        let dir = self.renditions_dir.clone();
        let (work, run_id, opts) = (self.work.clone(), self.run_id, self.opts);
        let made_from = self.made_from.clone();
        let mut sheets =
            crate::thumbnails::SpriteSheets::new(&dir, &self.job.thumbnails, units.plan())?;
        let state = &mut self.state;
        let mut writers: Vec<(u32, String, FragmentedMp4File)> = Vec::new();
        let source = units.plan().source.clone();
        for event in units {
            cancelled(opts)?;
            let event = match event? {
                reel_units::ChunkEvent::Media(e) => e,
                reel_units::ChunkEvent::Unit(u) => {
                    on_event(PipelineEvent::Unit(u));
                    continue;
                }
            };
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
                            made_from: made_from.get(&name).cloned(),
                        },
                    );
                    state.encodes.push(EncodeRecord {
                        rendition: name.clone(),
                        run: run_id,
                    });
                    state.save(&work)?;
                    on_event(PipelineEvent::RenditionDone {
                        name: name.clone(),
                        bytes,
                    });
                    encoded.push(name);
                }
                Event::Progress(p) => on_event(PipelineEvent::EncodeProgress(p)),
                Event::Notice(n) => on_event(PipelineEvent::Notice(n)),
                Event::Thumbnail { frame, picture } => {
                    if let Some(sheets) = sheets.as_mut() {
                        sheets.push(frame, &picture)?;
                    }
                }
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
        if let Some(sheets) = sheets {
            sheets.finish()?;
        }
        Ok(())
    }

    /// The package made while encoding `plan`, publishing its segments as they are written
    /// (the publish step finds them in the journal; manifests still go up last).
    fn live_package(
        &self,
        plan: &EncodePlan,
        extras: &[crate::audio::ExtraAudio],
    ) -> Result<crate::package::LivePackage, PipelineError> {
        let protection = self.protection()?;
        let _ = std::fs::remove_dir_all(&self.package_tmp);
        let mut order: Vec<u32> = plan.rungs.iter().map(|r| r.track_id).collect();
        order.extend(plan.audio.iter().map(|a| a.track_id));
        order.extend(
            extras
                .iter()
                .flat_map(|e| e.plan.audio.iter().map(|a| a.track_id)),
        );
        let expected = Some(plan.source.duration).filter(|d| *d > 0.0);
        // Read now, so that a bad subtitle file fails the run before the encode, not after.
        let subtitles = crate::subtitles::read_subtitles(&self.job.subtitle_inputs(self.base)?)?;
        let early = EarlyUploads::start(
            self.store.clone(),
            Journal::open(&self.journal_path)?,
            self.job.destination.parallel_uploads,
        );
        crate::package::LivePackage::new(
            &self.package_tmp,
            package_options(self.job, protection, expected, self.trick_play.clone()),
            order,
            Some(early),
            subtitles,
        )
    }

    /// Puts the title record and the poster beside the packaged `tracks` in `work/package.tmp`,
    /// then moves the whole package into `work/package` in one rename.
    fn complete_package(
        &self,
        tracks: &[reel_packager::PackagedTrack],
        thumbnails: Option<&crate::ThumbnailSprites>,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Result<(), PipelineError> {
        let (job, source, work) = (self.job, &self.source, &self.work);
        let (renditions_dir, measured) = (&self.renditions_dir, &self.measurements());
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
        if let Some(a) = analysis.as_mut() {
            crate::measure::merge_into_analysis(a, &|name| measured.get(name).cloned());
        }
        let measured_vmaf = |stem: &str| -> Option<f64> {
            measured.get(&reel_packager::safe_file_name(stem))?["vmaf"]["mean"].as_f64()
        };
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
            renditions: renditions(tracks, &predicted, &measured_vmaf),
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
            thumbnails: thumbnails.map(crate::ThumbnailSprites::record),
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

    /// `[quality] measure`: scores the video renditions not yet measured from their current
    /// files (a later run measures only what it re-encoded).
    fn measure(
        &mut self,
        ladder: &Ladder,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Result<(), PipelineError> {
        if !self.job.quality.measure {
            return Ok(());
        }
        let t = Instant::now();
        let renditions: Vec<(String, PathBuf, String)> = ladder
            .rungs
            .iter()
            .filter_map(|r| {
                let f = self.state.finished.get(&r.name)?;
                let name = reel_packager::safe_file_name(&r.name);
                Some((name, self.renditions_dir.join(&f.file), f.sha256.clone()))
            })
            .collect();
        on_event(PipelineEvent::PhaseStarted(Phase::Measure));
        let measured = measure_renditions(
            &self.source,
            &self.work,
            &renditions,
            &mut |frames, total| {
                // A second's worth at a time: a JSON event per frame would flood the output.
                if frames % 25 == 0 || frames == total {
                    on_event(PipelineEvent::MeasureProgress { frames, total })
                }
            },
        )?;
        if measured == 0 {
            on_event(PipelineEvent::PhaseSkipped {
                phase: Phase::Measure,
                why: "every rendition was measured by an earlier run".into(),
            });
            return Ok(());
        }
        self.phase_done(Phase::Measure, t, on_event);
        Ok(())
    }

    /// The measurements of the current rendition files, by file name (none unless `[quality]
    /// measure` is on).
    fn measurements(&self) -> BTreeMap<String, serde_json::Value> {
        if !self.job.quality.measure {
            return BTreeMap::new();
        }
        let kept = crate::measure::load(&self.work);
        self.state
            .finished
            .iter()
            .filter_map(|(name, f)| {
                let name = reel_packager::safe_file_name(name);
                let m = crate::measure::measured(&kept, &name, &f.sha256)?;
                Some((name, m.clone()))
            })
            .collect()
    }

    /// Finishes the package made during the encode, or packages (and encrypts) the rendition
    /// files when they or the packaging changed since the last package.
    fn package(
        &mut self,
        encode: &mut EncodeOutcome,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Result<PackageOutcome, PipelineError> {
        let t = Instant::now();
        let mut outcome = PackageOutcome {
            packaged: false,
            journal: None,
            early: reel_publish::EarlyReport::default(),
        };
        let up_to_date = encode.live.is_none()
            && self.state.package.as_deref()
                == Some(self.package_fingerprint(&encode.wanted).as_str())
            && self.package_dir.join(TITLE_RECORD).is_file();
        if up_to_date {
            on_event(PipelineEvent::PhaseSkipped {
                phase: Phase::Package,
                why: "the package from an earlier run is up to date".into(),
            });
            return Ok(outcome);
        }
        on_event(PipelineEvent::PhaseStarted(Phase::Package));
        let thumbnails = self.thumbnails(on_event);
        let tracks = match encode.live.take() {
            Some(live) => {
                let crate::package::LiveOutcome { tracks, early } = live
                    .finish(thumbnails.as_ref(), &mut |n| {
                        on_event(PipelineEvent::Notice(n))
                    })?;
                if let Some((journal, mut report)) = early {
                    outcome.journal = Some(journal);
                    for e in std::mem::take(&mut report.events) {
                        on_event(PipelineEvent::Publish(e));
                    }
                    if let Some(e) = &report.error {
                        on_event(PipelineEvent::Notice(format!(
                            "publishing segments during the encode stopped ({e}); the publish \
                             step sends the rest"
                        )));
                    }
                    outcome.early = report;
                }
                tracks
            }
            None => {
                let inputs: Vec<PathBuf> = encode
                    .wanted
                    .iter()
                    .map(|n| self.renditions_dir.join(&self.state.finished[n].file))
                    .collect();
                let _ = std::fs::remove_dir_all(&self.package_tmp);
                crate::package_files(
                    &inputs,
                    &[],
                    &self.job.subtitle_inputs(self.base)?,
                    thumbnails.as_ref(),
                    &self.package_tmp,
                    package_options(self.job, self.protection()?, None, self.trick_play.clone()),
                    &mut |n| on_event(PipelineEvent::Notice(n)),
                )?
            }
        };
        self.complete_package(&tracks, thumbnails.as_ref(), on_event)?;
        // Now that the keys exist (a fresh key file changes the fingerprint).
        self.state.package = Some(self.package_fingerprint(&encode.wanted));
        self.state.save(&self.work)?;
        outcome.packaged = true;
        self.phase_done(Phase::Package, t, on_event);
        Ok(outcome)
    }

    /// The thumbnails the encode made, when the job wants them; a notice says why a title
    /// that should have them has none.
    fn thumbnails(
        &self,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Option<crate::ThumbnailSprites> {
        if !self.job.thumbnails.enabled {
            return None;
        }
        match crate::ThumbnailSprites::load(&self.renditions_dir, &self.job.thumbnails) {
            Ok(t) => Some(t),
            Err(why) => {
                on_event(PipelineEvent::Notice(format!(
                    "no thumbnails: {why}; they are taken while the video is encoded (remove \
                     the work folder's renditions to encode it again)"
                )));
                None
            }
        }
    }

    /// Publishes media, playlists, manifests, then the title record.
    fn publish(
        &mut self,
        package: PackageOutcome,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) -> Result<Published, PipelineError> {
        let t = Instant::now();
        let record: TitleRecord = {
            let p = self.package_dir.join(TITLE_RECORD);
            let bytes = std::fs::read(&p).map_err(io_error(&p))?;
            serde_json::from_slice(&bytes).map_err(|e| PipelineError::State {
                path: p,
                detail: e.to_string(),
            })?
        };
        let uploads = uploads(&self.package_dir, &record)?;
        let mut journal = match package.journal {
            Some(j) => j,
            None => Journal::open(&self.journal_path)?,
        };
        on_event(PipelineEvent::PhaseStarted(Phase::Publish));
        let popts = PublishOptions {
            parallel: self.job.destination.parallel_uploads,
            cancel: Some(self.opts.cancel.clone()),
        };
        let report = publish(
            self.store.as_ref(),
            &uploads,
            &mut journal,
            &popts,
            &mut |e| on_event(PipelineEvent::Publish(e)),
        )
        .map_err(|e| match e {
            reel_publish::PublishError::Cancelled => PipelineError::Cancelled,
            other => other.into(),
        })?;
        self.phase_done(Phase::Publish, t, on_event);
        Ok(Published {
            record,
            report,
            packaged: package.packaged,
            early: package.early,
        })
    }

    fn phase_done(
        &mut self,
        phase: Phase,
        started: Instant,
        on_event: &mut dyn FnMut(PipelineEvent),
    ) {
        let seconds = started.elapsed().as_secs_f64();
        self.phase_seconds.insert(phase.name().into(), seconds);
        on_event(PipelineEvent::PhaseDone { phase, seconds });
    }

    fn summary(self, encode: EncodeOutcome, published: Published, started: Instant) -> RunSummary {
        let (dash_url, hls_url) = urls(self.job, self.base, self.store.as_ref(), &published.record);
        let (report, early) = (&published.report, &published.early);
        RunSummary {
            title: self.job.title.id.clone(),
            location: self.store.location(),
            dash_url,
            hls_url,
            renditions: published.record.renditions,
            nothing_to_do: encode.encoded.is_empty() && !published.packaged && report.uploaded == 0,
            encoded: encode.encoded,
            reused: encode.reused,
            packaged: published.packaged,
            // Segments published during the encode are counted there, not as already published.
            uploaded: report.uploaded + early.uploaded,
            already_published: report.skipped.saturating_sub(early.uploaded),
            bytes_uploaded: report.bytes_uploaded + early.bytes_uploaded,
            keys_file: self.keys_file,
            work_dir: self.work,
            phase_seconds: self.phase_seconds,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

const TITLE_RECORD: &str = "title.json";
/// The finished package in the work folder, and where it is made.
/// The work folder's finished units, by key.
const UNITS_DIR: &str = "units";
const PACKAGE_DIR: &str = "package";
const PACKAGE_TMP: &str = "package.tmp";
const ANALYSIS_REPORT: &str = "analysis.json";

/// The rendition a trick-play track is made from: the smallest picture of the first video
/// codec (key frames only, it is fetched at many times the play rate).
fn trick_play_source(rungs: &[reel_encoder::RungPlan]) -> Option<String> {
    let codec = rungs.first()?.codec;
    rungs
        .iter()
        .filter(|r| r.codec == codec)
        .min_by_key(|r| u64::from(r.width) * u64::from(r.height))
        .map(|r| reel_packager::safe_file_name(&r.name))
}

/// The package's options for `job`.
fn package_options(
    job: &Job,
    protection: Option<Protection>,
    expected_duration: Option<f64>,
    trick_play: Option<String>,
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
        trick_play,
    }
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
    let mut o = AnalyzeOptions::for_encoder(a.encoder().map_err(PipelineError::Unsupported)?);
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

#[cfg(feature = "vmaf")]
use crate::measure::measure_missing as measure_renditions;

/// Without VMAF, `[quality] measure` cannot run.
#[cfg(not(feature = "vmaf"))]
fn measure_renditions(
    _source: &Path,
    _work: &Path,
    _renditions: &[(String, PathBuf, String)],
    _on_frame: &mut dyn FnMut(u64, u64),
) -> Result<usize, PipelineError> {
    Err(PipelineError::Unsupported(
        "[quality] measure needs reel-pipeline's `vmaf` feature (the reel binary has it)".into(),
    ))
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

fn source_location(job: &Job, base: &Path) -> Result<SourceLocation, PipelineError> {
    job.source_location(base)
        .map_err(|detail| PipelineError::Job {
            path: base.to_path_buf(),
            detail,
        })
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
    /// The renditions of the `[[audio]]` tracks, when the plan is known.
    pub extra_audio: Vec<reel_encoder::AudioPlan>,
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
    let work = job.work_dir(base);
    let source = local_source(&source_location(job, base)?, &work, &mut |_| {})?;
    let probe = reel_encoder::probe(&source)?;
    let state = State::load(&work)?;
    let fresh = job
        .encode_fingerprint(&source)
        .is_ok_and(|f| f == state.encode_fingerprint);
    let ladder = if fresh { state.ladder.clone() } else { None }
        .or_else(|| job.ladder.load(base).ok().flatten());
    let (plan, extra_audio) = match ladder {
        Some(l) => {
            let mut plan = EncodePlan::new(probe, &l)?;
            let extra = crate::audio::plan_extra_audio(job, base, &mut plan, &l)?;
            let audio = extra.into_iter().flat_map(|e| e.plan.audio).collect();
            (Some(plan), audio)
        }
        None => (None, Vec::new()),
    };
    Ok(DryRun {
        title: job.title.id.clone(),
        source,
        work_dir: work,
        ladder: job.ladder.to_string(),
        plan,
        extra_audio,
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
