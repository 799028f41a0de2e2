//! `reel run JOB...`: jobs one after another, a progress display (or JSON events), a summary.

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reel_pipeline::{dry_run, run, Job, Phase, PipelineEvent, RunOptions, RunSummary};
use reel_publish::PublishEvent;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs every job; returns whether all succeeded.
pub fn run_jobs(
    jobs: &[PathBuf],
    json_out: bool,
    dry: bool,
    workers: Option<reel_dispatch::NatsWorkers>,
) -> Result<bool> {
    let workers = workers.map(|w| Arc::new(w) as Arc<dyn reel_units::Workers>);
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // First Ctrl-C: stop at the next safe point (the work folder stays consistent).
        // Second: leave at once.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping after the current step (Ctrl-C again to quit at once)");
        });
    }
    let mut results: Vec<(PathBuf, Result<Option<RunSummary>>)> = Vec::new();
    for path in jobs {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        let r = one(path, json_out, dry, &cancel, workers.clone());
        if let Err(e) = &r {
            if json_out {
                crate::emit(&format!(
                    "{}\n",
                    json!({"event": "failed", "job": path, "error": format!("{e:#}")})
                ));
            } else {
                eprintln!("error: {}: {e:#}", path.display());
            }
        }
        results.push((path.clone(), r));
    }
    let ok = results.iter().all(|r| r.1.is_ok()) && !cancel.load(Ordering::SeqCst);
    if !dry && !json_out && jobs.len() > 1 {
        let mut s = String::from("\njobs:\n");
        for (path, r) in &results {
            let _ = match r {
                Ok(Some(sum)) => writeln!(
                    s,
                    "  ok      {} -> {} ({:.1} s{})",
                    path.display(),
                    sum.location,
                    sum.seconds,
                    if sum.nothing_to_do {
                        ", nothing to do"
                    } else {
                        ""
                    }
                ),
                Ok(None) => writeln!(s, "  ok      {}", path.display()),
                Err(e) => writeln!(s, "  FAILED  {}: {e:#}", path.display()),
            };
        }
        for p in jobs.iter().skip(results.len()) {
            let _ = writeln!(s, "  skipped {} (stopped)", p.display());
        }
        crate::emit(&s);
    }
    Ok(ok)
}

fn one(
    path: &Path,
    json_out: bool,
    dry: bool,
    cancel: &Arc<AtomicBool>,
    workers: Option<Arc<dyn reel_units::Workers>>,
) -> Result<Option<RunSummary>> {
    let job = Job::from_file(path)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(base).with_context(|| base.display().to_string())?;
    if dry {
        let plan = dry_run(&job, &base).with_context(|| path.display().to_string())?;
        if json_out {
            crate::emit(&format!("{}\n", serde_json::to_string_pretty(&plan)?));
        } else {
            let mut s = String::new();
            let _ = writeln!(s, "job {}: title {}", path.display(), plan.title);
            let _ = writeln!(s, "  source: {}", plan.source.display());
            let _ = writeln!(s, "  work folder: {}", plan.work_dir.display());
            let _ = writeln!(s, "  ladder: {}", plan.ladder);
            match &plan.plan {
                Some(p) => {
                    s.push_str(&crate::output::describe_plan(p));
                    for a in &plan.extra_audio {
                        s.push_str(&crate::output::describe_audio(a));
                    }
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  (rungs are chosen by the per-title analysis when the job runs)"
                    );
                }
            }
            if !plan.finished.is_empty() {
                let _ = writeln!(s, "  already finished: {}", plan.finished.join(", "));
            }
            let _ = writeln!(
                s,
                "  packaging: CMAF, {} s segments{}, DASH + HLS",
                plan.segment_duration,
                if plan.single_file {
                    ", single file per track"
                } else {
                    ""
                }
            );
            match &plan.encryption {
                Some(e) => {
                    let _ = writeln!(s, "  encryption: {e}, DRM {}", plan.drm_systems.join(", "));
                }
                None => {
                    let _ = writeln!(s, "  encryption: none");
                }
            }
            let _ = writeln!(s, "  destination: {}", plan.destination);
            crate::emit(&s);
        }
        return Ok(None);
    }
    let opts = RunOptions {
        cancel: cancel.clone(),
        workers,
    };
    let mut display = (!json_out).then(|| Display::new(&job.title.id));
    let summary = run(&job, &base, &opts, &mut |e| {
        if json_out {
            crate::emit(&format!("{}\n", event_json(&job.title.id, &e)));
        } else if let Some(d) = display.as_mut() {
            d.show(&e);
        }
    });
    if let Some(d) = display {
        d.clear();
    }
    let summary = summary.with_context(|| format!("job {}", path.display()))?;
    if json_out {
        crate::emit(&format!(
            "{}\n",
            json!({"event": "summary", "title": job.title.id, "summary": summary})
        ));
    } else {
        crate::emit(&describe(&summary));
    }
    Ok(Some(summary))
}

fn event_json(title: &str, e: &PipelineEvent) -> serde_json::Value {
    match e {
        PipelineEvent::PhaseStarted(p) => {
            json!({"event": "phase_started", "title": title, "phase": p})
        }
        PipelineEvent::PhaseSkipped { phase, why } => {
            json!({"event": "phase_skipped", "title": title, "phase": phase, "why": why})
        }
        PipelineEvent::PhaseDone { phase, seconds } => {
            json!({"event": "phase_done", "title": title, "phase": phase, "seconds": seconds})
        }
        PipelineEvent::AnalysisProgress { done, planned } => {
            json!({"event": "analysis", "title": title, "done": done, "planned": planned})
        }
        PipelineEvent::EncodePlanned {
            renditions,
            frames_total,
        } => json!({"event": "encode_planned", "title": title,
            "renditions": renditions.iter().map(|r| &r.1).collect::<Vec<_>>(),
            "frames_total": frames_total}),
        PipelineEvent::EncodeProgress(p) => json!({"event": "encode_progress", "title": title,
            "track": p.track, "frames_done": p.frames_done, "frames_total": p.frames_total,
            "fps": p.fps}),
        PipelineEvent::MeasureProgress { frames, total } => {
            json!({"event": "measure_progress", "title": title, "frames": frames, "total": total})
        }
        PipelineEvent::RenditionDone { name, bytes } => {
            json!({"event": "rendition_done", "title": title, "rendition": name, "bytes": bytes})
        }
        PipelineEvent::Publish(p) => match p {
            PublishEvent::Planned { objects, bytes } => {
                json!({"event": "publish_planned", "title": title, "objects": objects, "bytes": bytes})
            }
            PublishEvent::Uploaded { key, size } => {
                json!({"event": "uploaded", "title": title, "key": key, "bytes": size})
            }
            PublishEvent::Skipped { key, size } => {
                json!({"event": "already_published", "title": title, "key": key, "bytes": size})
            }
            PublishEvent::TierDone(t) => {
                json!({"event": "tier_done", "title": title, "tier": format!("{t:?}").to_lowercase()})
            }
        },
        PipelineEvent::Notice(n) => json!({"event": "notice", "title": title, "message": n}),
        // `unit_planned`, `unit_started`, `unit_done`, `unit_retrying`, with the counts.
        PipelineEvent::Unit(u) => {
            let mut v = serde_json::to_value(u).expect("unit events serialize");
            let kind = v["event"].as_str().unwrap_or("").to_string();
            v["event"] = json!(format!("unit_{kind}"));
            v["title"] = json!(title);
            v
        }
    }
}

/// The terminal display: a line for the title's phase, a bar per rendition while encoding, a
/// bar for the analysis and one for publishing.
struct Display {
    multi: MultiProgress,
    title: ProgressBar,
    bars: HashMap<u32, ProgressBar>,
    analysis: Option<ProgressBar>,
    measure: Option<ProgressBar>,
    units: Option<ProgressBar>,
    /// Frames per second per rung of each worker's last unit.
    worker_fps: std::collections::BTreeMap<String, f64>,
    publish: Option<ProgressBar>,
}

impl Display {
    fn new(id: &str) -> Display {
        let multi = MultiProgress::new();
        let title = multi.add(ProgressBar::new_spinner());
        title.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]").expect("template"),
        );
        title.set_prefix(id.to_string());
        title.enable_steady_tick(std::time::Duration::from_millis(200));
        Display {
            multi,
            title,
            bars: HashMap::new(),
            analysis: None,
            measure: None,
            units: None,
            worker_fps: Default::default(),
            publish: None,
        }
    }

    fn bar(&self, len: u64, prefix: &str, template: &str) -> ProgressBar {
        let b = self.multi.add(ProgressBar::new(len.max(1)));
        b.set_style(
            ProgressStyle::with_template(template)
                .expect("template")
                .progress_chars("=> "),
        );
        b.set_prefix(prefix.to_string());
        b
    }

    fn show(&mut self, e: &PipelineEvent) {
        match e {
            PipelineEvent::PhaseStarted(p) => self.title.set_message(format!("{}...", p.name())),
            PipelineEvent::PhaseSkipped { phase, why } => {
                let _ = self
                    .multi
                    .println(format!("{}: skipped: {why}", phase.name()));
            }
            PipelineEvent::PhaseDone { phase, seconds } => {
                let bar = match phase {
                    Phase::Analyze => self.analysis.take(),
                    Phase::Measure => self.measure.take(),
                    _ => None,
                };
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                let _ = self
                    .multi
                    .println(format!("{}: done in {seconds:.1} s", phase.name()));
            }
            PipelineEvent::AnalysisProgress { done, planned } => {
                if self.analysis.is_none() {
                    self.analysis = Some(self.bar(
                        *planned as u64,
                        "analysis",
                        "{prefix:>14} [{bar:30}] {pos}/{len} trials eta {eta}",
                    ));
                }
                let b = self.analysis.as_ref().expect("set");
                b.set_length((*planned).max(*done).max(1) as u64);
                b.set_position(*done as u64);
            }
            PipelineEvent::MeasureProgress { frames, total } => {
                if self.measure.is_none() {
                    self.measure = Some(self.bar(
                        *total,
                        "VMAF",
                        "{prefix:>14} [{bar:30}] {pos}/{len} frames eta {eta}",
                    ));
                }
                let b = self.measure.as_ref().expect("set");
                b.set_length((*total).max(*frames).max(1));
                b.set_position(*frames);
            }
            PipelineEvent::EncodePlanned {
                renditions,
                frames_total,
            } => {
                for (track, name) in renditions {
                    let b = self.bar(
                        *frames_total,
                        name,
                        "{prefix:>14} [{bar:30}] {pos}/{len} frames {msg} eta {eta}",
                    );
                    self.bars.insert(*track, b);
                }
            }
            PipelineEvent::EncodeProgress(p) => {
                if let Some(b) = self.bars.get(&p.track) {
                    if let Some(t) = p.frames_total {
                        b.set_length(t.max(p.frames_done));
                    }
                    b.set_position(p.frames_done);
                    b.set_message(format!("{:.1} fps", p.fps));
                }
            }
            PipelineEvent::RenditionDone { name, .. } => {
                for b in self.bars.values() {
                    if b.prefix() == *name {
                        b.finish();
                    }
                }
            }
            PipelineEvent::Publish(p) => match p {
                PublishEvent::Planned { objects, .. } => {
                    // Replaces the count of segments uploaded during the encode, if any.
                    if let Some(b) = self.publish.take() {
                        b.finish_and_clear();
                    }
                    self.publish = Some(self.bar(
                        *objects as u64,
                        "publish",
                        "{prefix:>14} [{bar:30}] {pos}/{len} objects {msg}",
                    ));
                }
                // Before the publish step: segments going up while the encode runs.
                PublishEvent::Uploaded { .. } if self.publish.is_none() => {
                    let b = self.bar(0, "publish", "{prefix:>14} {pos} segments uploaded so far");
                    b.inc(1);
                    self.publish = Some(b);
                }
                PublishEvent::Uploaded { .. } | PublishEvent::Skipped { .. } => {
                    if let Some(b) = &self.publish {
                        b.inc(1);
                    }
                }
                PublishEvent::TierDone(t) => {
                    if let Some(b) = &self.publish {
                        b.set_message(format!("{t:?} done").to_lowercase());
                    }
                }
            },
            PipelineEvent::Notice(n) => {
                let _ = self.multi.println(format!("note: {n}"));
            }
            PipelineEvent::Unit(u) => self.show_unit(u),
        }
    }

    /// The units bar: done of total, running, failed attempts, each worker's rate.
    fn show_unit(&mut self, u: &reel_units::UnitEvent) {
        use reel_units::UnitEvent;
        let counts = match u {
            UnitEvent::Planned { counts } => {
                let b = self.bar(
                    counts.total as u64,
                    "units",
                    "{prefix:>14} [{bar:30}] {pos}/{len} {msg}",
                );
                self.units = Some(b);
                counts
            }
            UnitEvent::Started { counts, .. } => counts,
            UnitEvent::Done {
                counts,
                worker,
                fps,
                ..
            } => {
                if *fps > 0.0 {
                    self.worker_fps.insert(worker.clone(), *fps);
                }
                counts
            }
            UnitEvent::Retrying {
                unit,
                attempt,
                error,
                counts,
            } => {
                let _ = self.multi.println(format!(
                    "{unit}: attempt {attempt} failed ({error}); trying again"
                ));
                counts
            }
        };
        if let Some(b) = &self.units {
            b.set_position(counts.done as u64);
            let rates: Vec<String> = self
                .worker_fps
                .iter()
                .map(|(w, f)| format!("{w} {f:.0} fps"))
                .collect();
            b.set_message(format!(
                "done ({} reused), {} running, {} failed attempts{}{}",
                counts.reused,
                counts.running,
                counts.failed_attempts,
                if rates.is_empty() { "" } else { "; " },
                rates.join(", ")
            ));
        }
    }

    fn clear(self) {
        for b in self.bars.values().chain(&self.units) {
            b.finish_and_clear();
        }
        if let Some(b) = self.publish {
            b.finish_and_clear();
        }
        self.title.finish_and_clear();
    }
}

fn describe(s: &RunSummary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n{}: {} in {:.1} s{}",
        s.title,
        s.location,
        s.seconds,
        if s.nothing_to_do {
            " — nothing to do: already published, nothing changed"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "{:<14} {:<24} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}  segments",
        "rendition", "codec", "size", "kbit/s", "peak", "MB", "VMAF pred", "VMAF meas"
    );
    for r in &s.renditions {
        let size = match (r.width, r.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            t,
            "{:<14} {:<24} {:>10} {:>10.0} {:>10.0} {:>9.2} {:>9} {:>9}  {}",
            r.name,
            r.codec,
            size,
            r.average_bandwidth as f64 / 1000.0,
            r.bandwidth as f64 / 1000.0,
            r.bytes as f64 / 1e6,
            r.predicted_vmaf.map_or("-".into(), |v| format!("{v:.1}")),
            r.measured_vmaf.map_or("-".into(), |v| format!("{v:.1}")),
            r.segments
        );
    }
    let phases: Vec<String> = s
        .phase_seconds
        .iter()
        .map(|(k, v)| format!("{k} {v:.1} s"))
        .collect();
    let _ = writeln!(
        t,
        "encoded {} ({} reused); {} objects uploaded ({:.1} MB), {} already there; {}",
        if s.encoded.is_empty() {
            "nothing".to_string()
        } else {
            s.encoded.join(", ")
        },
        s.reused.len(),
        s.uploaded,
        s.bytes_uploaded as f64 / 1e6,
        s.already_published,
        if phases.is_empty() {
            "no step ran".into()
        } else {
            phases.join(", ")
        }
    );
    let _ = writeln!(t, "DASH: {}\nHLS:  {}", s.dash_url, s.hls_url);
    if let Some(k) = &s.keys_file {
        let _ = writeln!(
            t,
            "keys: {} (CPIX; never published — give it to the licence server)",
            k.display()
        );
    }
    let _ = writeln!(
        t,
        "play: `reel serve import <published folder> --keys <CPIX>` then `reel serve` (the \
         player page, licence server and origin; scripts/serve-demo.sh does this for the demo)"
    );
    t
}
