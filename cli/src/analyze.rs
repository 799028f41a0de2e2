//! `reel analyze`: per-title ladder analysis, its report, plot and ladder file.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reel_ladder::{analyze, Analysis, AnalyzeEvent, AnalyzeOptions};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// At most this many rungs.
    #[arg(long, default_value_t = 6)]
    pub max_rungs: usize,
    /// Each rung's bitrate at least this many times the next lower one's.
    #[arg(long, default_value_t = 1.5)]
    pub step_ratio: f64,
    /// No rung below this bitrate (kbit/s).
    #[arg(long, default_value_t = 100.0)]
    pub min_bitrate: f64,
    /// No rung above this bitrate (kbit/s).
    #[arg(long, default_value_t = 20_000.0)]
    pub max_bitrate: f64,
    /// Quality ceiling (VMAF): the top rung is the cheapest that reaches it.
    #[arg(long, default_value_t = 95.0)]
    pub ceiling: f64,
    /// Quality floor (VMAF): no rung below it.
    #[arg(long, default_value_t = 30.0)]
    pub floor: f64,
    /// Tallest rung allowed (lines).
    #[arg(long, default_value_t = 2160)]
    pub max_height: u32,
    /// The devices' decoder level for the codec (H.264 `3.1`, `4.0`, ...; AV1 `3.0`, `4.0`,
    /// ...): no rung larger or faster than it admits, no bitrate above its limit.
    #[arg(long)]
    pub level: Option<String>,
    /// Candidate heights, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1080,720,540,432,360,270,234"
    )]
    pub heights: Vec<u32>,
    /// Codec of the trials and the ladder: `h264` (x264) or `av1` (SVT-AV1 when built in,
    /// else rav1e).
    #[arg(long, default_value = "h264", value_parser = video_codec)]
    pub codec: reel_media::Codec,
    /// Encoder of the trials and the rungs: `svt-av1` or `rav1e` for AV1, `x264` for H.264;
    /// by default the codec's.
    #[arg(long, value_parser = video_encoder)]
    pub encoder: Option<reel_encoder::VideoEncoder>,
    /// Constant-quality settings tried at each height (whatever `--rate-control` is),
    /// comma-separated, on the encoder's scale: x264 CRFs (0-50; default 16,22,28,34,40,46),
    /// SVT-AV1 CRFs (1-63; default 13,20,28,35,43,50,58) or rav1e quantizers (0-255; default
    /// 50,80,110,140,170,200,230).
    #[arg(long, value_delimiter = ',')]
    pub crfs: Option<Vec<u32>>,
    /// Share of the title the trials encode (within --min-sample and --max-sample seconds).
    #[arg(long, default_value_t = 0.1)]
    pub sample_fraction: f64,
    /// Seconds sampled at least (or the whole title when shorter).
    #[arg(long, default_value_t = 1.0)]
    pub min_sample: f64,
    #[arg(long, default_value_t = 120.0)]
    pub max_sample: f64,
    /// Seconds per sample window.
    #[arg(long, default_value_t = 2.0)]
    pub window: f64,
    /// Encoder speed of the trials: x264 preset 1 (placebo) ... 10 (ultrafast), default 8 =
    /// veryfast as the rungs are encoded; SVT-AV1 preset 0-13 or rav1e speed 0-10, default 10
    /// as the rungs.
    #[arg(long)]
    pub trial_preset: Option<u8>,
    /// How the ladder's rungs are encoded: `bitrate` (the predicted bitrate as a CBR target,
    /// like the fixed ladder; the H.264 default) or `crf` (the chosen CRF or rav1e quantizer;
    /// the only choice for AV1).
    #[arg(long, value_parser = ["bitrate", "crf"])]
    pub rate_control: Option<String>,
    /// Score one frame in n, the middle of each run of n (VMAF's motion feature still sees
    /// every frame); keep n odd, out of step with the encoder's 4-frame mini-GOPs.
    #[arg(long, default_value_t = 5)]
    pub metric_subsample: u32,
}

/// `--codec`: a video codec's name.
fn video_codec(name: &str) -> std::result::Result<reel_media::Codec, String> {
    reel_media::Codec::from_name(name)
        .filter(|c| c.kind() == reel_media::TrackKind::Video)
        .ok_or_else(|| format!("'{name}' is not h264 or av1"))
}

/// `--encoder`: a video encoder's name.
fn video_encoder(name: &str) -> std::result::Result<reel_encoder::VideoEncoder, String> {
    serde_json::from_value(serde_json::Value::String(name.into()))
        .map_err(|_| format!("'{name}' is not svt-av1, rav1e or x264"))
}

impl AnalyzeArgs {
    pub fn options(&self) -> Result<AnalyzeOptions> {
        let codec = self.codec;
        let encoder = reel_encoder::VideoEncoder::choose(self.encoder, codec)
            .map_err(|why| anyhow::anyhow!("--encoder/--codec: {why}"))?;
        let mut o = AnalyzeOptions::for_encoder(encoder);
        let crfs = self.crfs.clone().unwrap_or_else(|| o.qualities.clone());
        if self.heights.is_empty() || crfs.is_empty() {
            bail!("--heights and --crfs need at least one value each");
        }
        let (scale, qualities) = encoder.qualities();
        if let Some(q) = crfs.iter().find(|&&q| !qualities.contains(&q)) {
            bail!(
                "--crfs: {q} is outside {}'s {scale} range {}-{}",
                encoder.name(),
                qualities.start(),
                qualities.end()
            );
        }
        if self.step_ratio.is_nan() || self.step_ratio < 1.0 {
            bail!("--step-ratio must be at least 1 (got {})", self.step_ratio);
        }
        if self.sample_fraction.is_nan()
            || self.sample_fraction <= 0.0
            || self.sample_fraction > 1.0
        {
            bail!(
                "--sample-fraction must be in (0, 1] (got {})",
                self.sample_fraction
            );
        }
        if self.window.is_nan() || self.window <= 0.0 {
            bail!("--window must be positive");
        }
        let speeds = encoder.speeds();
        match self.trial_preset {
            Some(p) if !speeds.contains(&p) => bail!(
                "--trial-preset must be {}-{} for {}",
                speeds.start(),
                speeds.end(),
                encoder.name()
            ),
            Some(p) => o.trial_speed = p,
            None => {}
        }
        o.heights = self.heights.clone();
        o.qualities = crfs;
        o.metric_subsample = self.metric_subsample.max(1);
        match self.rate_control.as_deref() {
            Some("crf") => o.rate_control = reel_ladder::RungRateControl::Crf,
            Some(_) if codec == reel_media::Codec::Av1 => bail!(
                "--rate-control bitrate: AV1 ladders are analysed with constant-quality trials \
                 and rungs (an AV1 encoder's bitrate control does not settle within a sample \
                 window); use --rate-control crf"
            ),
            Some(_) => o.rate_control = reel_ladder::RungRateControl::Bitrate,
            None => {}
        }
        o.constraints = reel_ladder::Constraints {
            max_rungs: self.max_rungs.max(1),
            step_ratio: self.step_ratio,
            min_bitrate: self.min_bitrate,
            max_bitrate: self.max_bitrate,
            quality_ceiling: self.ceiling,
            quality_floor: self.floor,
            max_height: self.max_height,
            level: self.level.clone(),
        };
        if let Some(l) = &self.level {
            reel_ladder::device::Level::parse(codec, l)
                .map_err(|e| anyhow::anyhow!("--level: {e}"))?;
        }
        o.sample = reel_ladder::sample::SampleOptions {
            fraction: self.sample_fraction,
            min_seconds: self.min_sample,
            max_seconds: self.max_sample,
            window_seconds: self.window,
        };
        Ok(o)
    }
}

/// Runs the analysis with a progress bar (unless `quiet`).
pub fn run(file: &Path, args: &AnalyzeArgs, quiet: bool) -> Result<Analysis> {
    let opts = args.options()?;
    let bar = (!quiet).then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{prefix:>12} {spinner} {msg} {pos}/{len} {elapsed}")
                .expect("valid template"),
        );
        b.set_prefix("analyze");
        b.set_message("scanning shots");
        b
    });
    let analysis = analyze(file, &opts, &mut |e| {
        if let Some(b) = &bar {
            match e {
                AnalyzeEvent::Scanning { frames } => b.set_position(frames),
                AnalyzeEvent::Planned { trials } => {
                    b.set_message("trial encodes");
                    b.set_position(0);
                    b.set_length(trials as u64);
                }
                AnalyzeEvent::TrialDone => b.inc(1),
            }
        }
    })
    .with_context(|| format!("{}: analysis failed", file.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(analysis)
}

/// Writes `text` to `path` through a temporary name.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ));
    std::fs::write(&tmp, text).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

pub fn outputs(
    a: &Analysis,
    report: Option<&PathBuf>,
    plots: &[PathBuf],
    ladder_out: Option<&PathBuf>,
) -> Result<()> {
    if let Some(p) = report {
        write_atomic(p, &(serde_json::to_string_pretty(a)? + "\n"))?;
    }
    for p in plots {
        reel_ladder::plot(a, p)?;
    }
    if let Some(p) = ladder_out {
        let text = if p.extension().is_some_and(|e| e == "json") {
            serde_json::to_string_pretty(&a.ladder)? + "\n"
        } else {
            toml::to_string(&a.ladder).context("ladder as TOML")?
        };
        write_atomic(p, &text)?;
    }
    Ok(())
}

/// The human summary.
pub fn describe(a: &Analysis) -> String {
    let mut s = String::new();
    let src = &a.source;
    s += &format!(
        "{}: {}x{} ({}x{} display), {:.2} s, {} frames, {} shot(s)\n",
        src.path.display(),
        src.width,
        src.height,
        src.display_width,
        src.display_height,
        src.duration,
        src.frames,
        a.shots.len()
    );
    s += &format!(
        "sampled {:.2} s in {} window(s); {} trials; hull of {} points; {:.1} s\n",
        a.sampled_seconds,
        a.windows.len(),
        a.trials.len(),
        a.hull.len(),
        a.seconds
    );
    match &a.fallback {
        Some(why) => {
            s += &format!("fallback: fixed ladder, trimmed to the source, because {why}\n");
            for r in &a.ladder.rungs {
                s += &format!(
                    "  {:<14} {:>5} lines {:>7} kbit/s\n",
                    r.name,
                    r.height,
                    r.bitrate.map_or("-".into(), |b| b.to_string())
                );
            }
        }
        None => {
            let crf = a.options.rate_control == reel_ladder::RungRateControl::Crf;
            s += &format!(
                "{:<14} {:>9} {:>5} {:>14} {:>9}\n",
                "rung",
                "size",
                if crf { "CRF" } else { "" },
                if crf { "kbit/s (pred)" } else { "kbit/s" },
                "VMAF (pred)"
            );
            for r in &a.rungs {
                s += &format!(
                    "{:<14} {:>9} {:>5} {:>14.0} {:>9.2}\n",
                    r.name,
                    format!("{}x{}", r.width, r.height),
                    if crf {
                        r.setting.to_string()
                    } else {
                        String::new()
                    },
                    r.predicted_bitrate,
                    r.predicted_vmaf
                );
            }
        }
    }
    s
}

impl AnalyzeArgs {
    /// The defaults `reel analyze` would use.
    pub fn defaults() -> AnalyzeArgs {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            a: AnalyzeArgs,
        }
        <Wrap as clap::Parser>::parse_from(["reel"]).a
    }
}
