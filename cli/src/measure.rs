//! `reel measure`: encoded renditions scored against their source (VMAF, every frame), and set
//! beside the per-title analysis's predictions when it is given.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use reel_ladder::{measure_renditions, Analysis, PredictionError, RenditionFile, RenditionQuality};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One rendition's measurement, with the rung's prediction when the analysis has it.
#[derive(Debug, Serialize)]
pub struct RenditionReport {
    pub name: String,
    pub path: PathBuf,
    #[serde(flatten)]
    pub measured: RenditionQuality,
    pub predicted_vmaf: Option<f64>,
    pub predicted_bitrate: Option<f64>,
    /// RenditionQuality minus predicted VMAF.
    pub error: Option<f64>,
}

/// What `reel measure` found.
#[derive(Debug, Serialize)]
pub struct MeasureReport {
    pub renditions: Vec<RenditionReport>,
    pub prediction_error: Option<PredictionError>,
}

/// The video renditions named: files, or every MP4 with a video track in a folder (as `reel
/// encode --out` leaves them), named by file stem.
pub fn rendition_files(paths: &[PathBuf]) -> Result<Vec<RenditionFile>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "mp4"))
                .filter(|f| reel_encoder::probe(f).is_ok_and(|i| i.video().is_some()))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("{}: no MP4 file with a video track in it", p.display());
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files
        .into_iter()
        .map(|path| RenditionFile {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path,
        })
        .collect())
}

/// Reads an analysis: a `reel analyze --report` file, or a `title.json` with its analysis.
pub fn read_analysis(path: &Path) -> Result<Analysis> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))?;
    if let Some(inner) = value.get_mut("analysis") {
        if inner.is_null() {
            bail!(
                "{}: this title record has no analysis (its ladder was not per-title)",
                path.display()
            );
        }
        value = inner.take();
    }
    serde_json::from_value(value)
        .with_context(|| format!("{}: not a per-title analysis report", path.display()))
}

/// Scores `renditions` against `source` (with a progress bar unless `quiet`) and records the
/// measurements in `analysis`'s rungs, matched by file name.
pub fn measure(
    source: &Path,
    renditions: &[RenditionFile],
    analysis: Option<&mut Analysis>,
    quiet: bool,
) -> Result<MeasureReport> {
    let bar = (!quiet).then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{prefix:>12} {bar:40} {pos}/{len} frames {elapsed}")
                .expect("valid template"),
        );
        b.set_prefix("measure");
        b
    });
    let measured = measure_renditions(source, renditions, &mut |n, total| {
        if let Some(b) = &bar {
            b.set_length(total.max(n));
            b.set_position(n);
        }
    })
    .with_context(|| format!("{}: measuring the renditions failed", source.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut analysis = analysis;
    let mut reports = Vec::new();
    for (file, m) in renditions.iter().zip(measured) {
        let rung = analysis.as_deref_mut().and_then(|a| {
            let name = a
                .rungs
                .iter()
                .find(|r| reel_packager::safe_file_name(&r.name) == file.name)?
                .name
                .clone();
            a.record_measured(&name, m.clone());
            a.rungs.iter().find(|r| r.name == name).cloned()
        });
        reports.push(RenditionReport {
            name: file.name.clone(),
            path: file.path.clone(),
            predicted_vmaf: rung.as_ref().map(|r| r.predicted_vmaf),
            predicted_bitrate: rung.as_ref().map(|r| r.predicted_bitrate),
            error: rung.as_ref().and_then(|r| r.error()),
            measured: m,
        });
    }
    Ok(MeasureReport {
        renditions: reports,
        prediction_error: analysis.and_then(|a| a.prediction_error.clone()),
    })
}

/// The human summary.
pub fn describe(report: &MeasureReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>11} {:>7}",
        "rendition", "kbit/s", "frames", "VMAF", "harm.", "p5", "min", "predicted", "error"
    );
    for r in &report.renditions {
        let m = &r.measured;
        let _ = writeln!(
            s,
            "{:<14} {:>9.0} {:>7} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>11} {:>7}",
            r.name,
            m.bitrate,
            m.frames,
            m.vmaf.mean,
            m.vmaf.harmonic_mean,
            m.vmaf.p5,
            m.vmaf.min,
            r.predicted_vmaf.map_or("-".into(), |v| format!("{v:.2}")),
            r.error.map_or("-".into(), |e| format!("{e:+.2}")),
        );
    }
    if let Some(e) = &report.prediction_error {
        let _ = writeln!(
            s,
            "prediction error over {} rung(s): mean absolute {:.2} VMAF, largest {:+.2}",
            e.rungs, e.mean_absolute, e.largest
        );
    }
    s
}
