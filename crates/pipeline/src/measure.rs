//! `[quality] measure`: every video rendition scored against the source (VMAF, every frame),
//! kept in the work folder by the rendition's hash so that a later run measures only what it
//! re-encoded, and merged into `title.json` (per rendition, and beside the analysis's
//! predictions).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The measurements in the work folder: rendition name -> `{"sha256", "measured"}`.
pub(crate) const MEASURED_FILE: &str = "measured.json";

/// The measurements kept in `work`, by rendition name (empty when there are none).
pub(crate) fn load(work: &Path) -> BTreeMap<String, Value> {
    std::fs::read(work.join(MEASURED_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// What `load` kept for rendition `name`, when it was measured from the file with `sha256`.
pub(crate) fn measured<'a>(
    kept: &'a BTreeMap<String, Value>,
    name: &str,
    sha256: &str,
) -> Option<&'a Value> {
    let entry = kept.get(name)?;
    (entry["sha256"] == sha256).then_some(&entry["measured"])
}

/// Records each measured rung's measurement in the analysis report (`rungs[].measured` and
/// `prediction_error`, as `reel measure --analysis` writes them). `measured` is looked up by
/// the rung's file name.
#[cfg(feature = "vmaf")]
pub(crate) fn merge_into_analysis(analysis: &mut Value, measured: &dyn Fn(&str) -> Option<Value>) {
    let Ok(mut typed) = serde_json::from_value::<reel_ladder::Analysis>(analysis.clone()) else {
        return;
    };
    let names: Vec<String> = typed.rungs.iter().map(|r| r.name.clone()).collect();
    for name in names {
        let found = measured(&reel_packager::safe_file_name(&name))
            .and_then(|m| serde_json::from_value::<reel_ladder::RenditionQuality>(m).ok());
        if let Some(m) = found {
            typed.record_measured(&name, m);
        }
    }
    *analysis = serde_json::to_value(&typed).expect("an analysis serializes");
}

/// Without VMAF there is no per-title analysis to merge into.
#[cfg(not(feature = "vmaf"))]
pub(crate) fn merge_into_analysis(
    _analysis: &mut Value,
    _measured: &dyn Fn(&str) -> Option<Value>,
) {
}

/// Scores the renditions `(name, file, sha256)` not yet measured from these very files, and
/// keeps every measurement in `work`.
#[cfg(feature = "vmaf")]
pub(crate) fn measure_missing(
    source: &Path,
    work: &Path,
    renditions: &[(String, std::path::PathBuf, String)],
    on_frame: &mut dyn FnMut(u64, u64),
) -> Result<usize, crate::PipelineError> {
    let mut kept = load(work);
    let missing: Vec<&(String, std::path::PathBuf, String)> = renditions
        .iter()
        .filter(|(name, _, sha)| measured(&kept, name, sha).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let files: Vec<reel_ladder::RenditionFile> = missing
        .iter()
        .map(|(name, path, _)| reel_ladder::RenditionFile {
            name: name.clone(),
            path: path.clone(),
        })
        .collect();
    let scores = reel_ladder::measure_renditions(source, &files, on_frame)?;
    for ((name, _, sha256), m) in missing.iter().zip(scores) {
        kept.insert(
            name.clone(),
            serde_json::json!({ "sha256": sha256, "measured": m }),
        );
    }
    let path = work.join(MEASURED_FILE);
    let tmp = work.join(format!(".{MEASURED_FILE}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&kept).expect("JSON values serialize"),
    )
    .map_err(crate::io_error(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(crate::io_error(&path))?;
    Ok(missing.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "vmaf")]
    #[test]
    fn measured_rungs_get_their_measurement_and_the_error() {
        let mut analysis: Value =
            serde_json::from_str(include_str!("../../ladder/src/testdata/analysis.json")).unwrap();
        let top = analysis["rungs"][0]["predicted_vmaf"].as_f64().unwrap();
        let top_name = analysis["rungs"][0]["name"].as_str().unwrap().to_string();
        let measured = |name: &str| {
            (name == top_name).then(|| {
                serde_json::json!({"bitrate": 900.0, "frames": 75, "vmaf":
                    {"mean": top - 2.5, "harmonic_mean": top - 3.0, "p5": top - 5.0, "min": top - 9.0}})
            })
        };
        merge_into_analysis(&mut analysis, &measured);
        assert_eq!(analysis["rungs"][0]["measured"]["bitrate"], 900.0);
        assert!(analysis["rungs"][1].get("measured").is_none());
        assert_eq!(analysis["prediction_error"]["rungs"], 1);
        let largest = analysis["prediction_error"]["largest"].as_f64().unwrap();
        assert!((largest + 2.5).abs() < 1e-9, "{largest}");
    }

    #[test]
    fn a_measurement_of_another_file_is_not_used() {
        let kept: BTreeMap<String, Value> = serde_json::from_value(serde_json::json!({
            "720p": {"sha256": "aa", "measured": {"vmaf": {"mean": 90.0}}}
        }))
        .unwrap();
        assert!(measured(&kept, "720p", "aa").is_some());
        assert!(measured(&kept, "720p", "bb").is_none());
        assert!(measured(&kept, "360p", "aa").is_none());
    }
}
