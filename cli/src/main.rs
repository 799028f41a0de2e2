//! `reel`: a thin command-line shell over the Reel libraries.

mod analyze;
mod keys;
mod measure;
mod output;
mod package;
mod progress;
mod run;
mod serve;
mod worker;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use reel_encoder::{EncodePlan, Event, LadderChoice, SampleStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "reel",
    version,
    about = "Turn mezzanines into streamable renditions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the catalog, auth, playback, ClearKey licence, origin and player page
    /// (`reel serve`), or manage its data (`reel serve import`, `reel serve account`).
    Serve {
        #[command(flatten)]
        config: reel_services::Config,
        #[command(subcommand)]
        action: Option<serve::ServeAction>,
    },
    /// Show the container, duration and every stream of a media file.
    Probe {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Per-title analysis: trial-encode samples of the title at candidate resolutions and
    /// qualities, measure VMAF, build the rate-quality convex hull and choose rungs from it.
    Analyze {
        file: PathBuf,
        /// Write every trial, the hull and the chosen rungs as JSON.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Draw the curves, hull and rungs (.svg or .png; may be given twice).
        #[arg(long)]
        plot: Vec<PathBuf>,
        /// Write the chosen ladder (TOML, or JSON by extension) for `reel encode --ladder`.
        #[arg(long)]
        ladder_out: Option<PathBuf>,
        #[command(flatten)]
        options: analyze::AnalyzeArgs,
        #[arg(long)]
        json: bool,
    },
    /// Score every frame of encoded video renditions against their source with VMAF (scaled
    /// as the per-title analysis scores its trials) and, given the analysis that chose the
    /// ladder, set each rung's measurement beside its prediction.
    Measure {
        /// The source the renditions were encoded from.
        source: PathBuf,
        /// Video renditions: MP4 files, or folders whose MP4 files with video are taken (as
        /// `reel encode --out` leaves them). A rendition is matched to a rung by file name.
        #[arg(required = true)]
        renditions: Vec<PathBuf>,
        /// The analysis the ladder came from: a `reel analyze --report` file, or a published
        /// `title.json` (its `analysis`).
        #[arg(long)]
        analysis: Option<PathBuf>,
        /// Write JSON: the analysis with each rung's measurement (with --analysis), else the
        /// measurements.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Draw the analysis with the measured rungs beside the predicted ones (.svg or .png;
        /// needs --analysis; may be given twice).
        #[arg(long)]
        plot: Vec<PathBuf>,
        /// Print the measurements as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decode a mezzanine once and encode every rung of a ladder, one fragmented MP4 per track.
    Encode {
        file: PathBuf,
        /// A ladder file (TOML, or JSON by extension) or a built-in ladder: `h264`, `av1`,
        /// `fixed` (Apple's HLS authoring-spec H.264 ladder, 234p to 1080p), or `per-title`
        /// (runs `reel analyze` with its defaults first).
        #[arg(long, default_value = "h264")]
        ladder: LadderChoice,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Print the plan and exit without encoding.
        #[arg(long)]
        dry_run: bool,
        /// Print a JSON summary instead of text and progress bars.
        #[arg(long)]
        json: bool,
    },
    /// Package renditions (our encoder's files, or any MP4/MKV/TS with H.264/AV1 video and
    /// AAC/Opus audio) as CMAF segments with a DASH MPD and HLS playlists.
    Package {
        /// Rendition files; their video key frames must line up.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Target segment duration in seconds (segments start on key frames at or after it).
        #[arg(long, default_value_t = reel_packager::DEFAULT_SEGMENT_SECONDS)]
        segment_duration: f64,
        /// One file per track with a sidx (DASH SegmentBase, HLS byte ranges) instead of one
        /// file per segment.
        #[arg(long)]
        single_file: bool,
        /// A WebVTT (.vtt), SubRip (.srt), TTML/IMSC1 (.ttml, .dfxp, .xml) or ASS/SSA file, or
        /// a media file's text track (.mp4/.mov mov_text, .mkv SubRip or ASS; the one in
        /// LANGUAGE), as a text
        /// track: LANGUAGE[,KIND[,NAME]]=FILE, with a BCP 47 language and KIND subtitles (the
        /// default), captions (SDH) or forced.
        /// Repeat for each language and kind. Example: --subtitles en,captions=en-sdh.srt
        #[arg(long = "subtitles", value_name = "LANGUAGE[,KIND[,NAME]]=FILE")]
        subtitles: Vec<reel_pipeline::SubtitleInput>,
        /// An encoded audio file (AAC or Opus, in MP4 or Matroska) as one more audio track:
        /// LANGUAGE[,ROLE[,NAME]]=FILE, with a BCP 47 language, ROLE dub (the default), main,
        /// commentary or description (audio description), and the NAME players list (made from
        /// language and role when left out). Its track is named audio_LANG_ROLE. Repeat for
        /// each. Example: --audio "en,commentary,Director's commentary=c.m4a"
        #[arg(long = "audio", value_name = "LANGUAGE[,ROLE[,NAME]]=FILE")]
        audio: Vec<reel_pipeline::AudioFile>,
        /// The form of DASH text tracks: source (TTML stays IMSC1, the rest WebVTT), webvtt
        /// (CMAF wvtt) or imsc1 (CMAF stpp). HLS always gets WebVTT segments.
        #[arg(long, value_name = "FORM", default_value = "source")]
        dash_text: reel_pipeline::DashText,
        /// Also make a trick-play track (key frames only, for fast forward and rewind: a DASH
        /// trick-mode AdaptationSet) from the video of this input, named by its file name
        /// without extension (e.g. 360p for 360p.mp4).
        #[arg(long, value_name = "NAME")]
        trick_play: Option<String>,
        #[command(flatten)]
        encryption: keys::EncryptArgs,
        #[arg(long)]
        json: bool,
    },
    /// Content keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run jobs (TOML or JSON specs): source to a published, protected title each, one after
    /// another; a failed title does not stop the others. Resumable: a re-run skips what is done.
    Run {
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
        /// One JSON event per line instead of progress bars and tables.
        #[arg(long)]
        json: bool,
        /// Print what would be done, do nothing.
        #[arg(long)]
        dry_run: bool,
        /// Encode the units on `reel worker` processes (any machines) instead of this one.
        #[command(flatten)]
        cluster: worker::Cluster,
    },
    /// Encode units for `reel run --nats` coordinators: pull them from the NATS JetStream
    /// work queue, read sources from and put outputs into the shared object store. Stops
    /// after the units in hand on Ctrl-C or SIGTERM.
    Worker(worker::WorkerArgs),
    /// Publish a packaged folder to `file://PATH` or `s3://bucket/prefix`: media first,
    /// then playlists, then manifests, then `title.json`; objects a journal already records
    /// with the same checksum are skipped.
    Publish {
        folder: PathBuf,
        #[arg(long)]
        to: String,
        /// S3-compatible server URL (path-style addressing unless --virtual-hosted).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        virtual_hosted: bool,
        /// Create the bucket when missing.
        #[arg(long)]
        create_bucket: bool,
        /// The journal of published objects (default: FOLDER.published.jsonl beside it).
        #[arg(long)]
        journal: Option<PathBuf>,
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        #[arg(long)]
        json: bool,
    },
    /// Split an already-encoded file (MP4, MKV, TS) into one fragmented MP4 per track, without
    /// re-encoding.
    Demux {
        file: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate random keys (one per track class) into a DASH-IF CPIX file for a licence
    /// server and for `reel package --cpix`. Prints the key IDs, never the keys.
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Track classes to make keys for (default audio,sd,hd,uhd; `all` for one key).
        #[arg(long)]
        classes: Option<String>,
        /// Content ID written in the CPIX document.
        #[arg(long, default_value = "reel")]
        content_id: String,
    },
}

/// Writes to standard output; a reader that went away (`reel ... | head`) is not an error.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Run { .. } | Command::Encode { .. } | Command::Worker { .. }
    ) {
        limit_malloc_arenas();
        quiet_svt_av1();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Caps glibc's malloc arenas for encoding commands (unless `MALLOC_ARENA_MAX` says
/// otherwise). A chunked encode starts fresh GStreamer, x264 and rav1e threads for every unit;
/// with glibc's default of eight arenas per core, each new thread's allocations land in
/// another arena and freed memory stays spread over them, so a 120-s title peaked at 400 MB
/// where a 10-s one took 230 MB. With two arenas both took 225 MB, and no encode was slower.
/// Called before any thread starts.
fn limit_malloc_arenas() {
    const ARENAS: i32 = 2;
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; no thread is running yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// SVT-AV1 prints a banner of its settings on stderr for every encoder it starts (one per AV1
/// rung and chunk), between our progress lines: keep its errors only, unless `SVT_LOG` says
/// otherwise. Called before any thread starts (the library reads the variable at each init).
fn quiet_svt_av1() {
    if std::env::var_os("SVT_LOG").is_none() {
        std::env::set_var("SVT_LOG", "1");
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config, action } => serve::run(config, action)?,
        Command::Worker(args) => worker::run(args)?,
        Command::Run {
            jobs,
            json,
            dry_run,
            cluster,
        } => {
            let workers = cluster.workers()?;
            if !run::run_jobs(&jobs, json, dry_run, workers)? {
                bail!("not every job finished");
            }
        }
        Command::Probe { file, json } => {
            let info = reel_encoder::probe(&file)?;
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&info)?));
            } else {
                emit(&output::describe(&info));
            }
        }
        Command::Analyze {
            file,
            report,
            plot,
            ladder_out,
            options,
            json,
        } => {
            let a = analyze::run(&file, &options, json)?;
            analyze::outputs(&a, report.as_ref(), &plot, ladder_out.as_ref())?;
            if let Some(why) = &a.fallback {
                eprintln!("warning: {}: per-title analysis not used: {why}; the fixed ladder, trimmed to the source, stands in", file.display());
            }
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&a)?));
            } else {
                emit(&analyze::describe(&a));
            }
        }
        Command::Measure {
            source,
            renditions,
            analysis,
            report,
            plot,
            json,
        } => {
            if !plot.is_empty() && analysis.is_none() {
                bail!("--plot draws the analysis's predictions beside the measurements: give --analysis too");
            }
            let files = measure::rendition_files(&renditions)?;
            let mut analysis = analysis
                .as_deref()
                .map(measure::read_analysis)
                .transpose()?;
            let measured = measure::measure(&source, &files, analysis.as_mut(), json)?;
            if let Some(p) = &report {
                let text = match &analysis {
                    Some(a) => serde_json::to_string_pretty(a)?,
                    None => serde_json::to_string_pretty(&measured)?,
                };
                analyze::write_atomic(p, &(text + "\n"))?;
            }
            if let Some(a) = &analysis {
                for p in &plot {
                    reel_ladder::plot(a, p)?;
                }
            }
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&measured)?));
            } else {
                emit(&measure::describe(&measured));
            }
        }
        Command::Encode {
            file,
            ladder,
            out,
            dry_run,
            json,
        } => {
            let ladder = match ladder.load(Path::new(""))? {
                Some(ladder) => ladder,
                None => {
                    let a = analyze::run(&file, &analyze::AnalyzeArgs::defaults(), json)?;
                    if let Some(why) = &a.fallback {
                        eprintln!("warning: {}: per-title analysis not used: {why}; the fixed ladder, trimmed to the source, stands in", file.display());
                    }
                    a.ladder
                }
            };
            let plan = EncodePlan::new(reel_encoder::probe(&file)?, &ladder)?;
            if dry_run {
                if json {
                    emit(&format!("{}\n", serde_json::to_string_pretty(&plan)?));
                } else {
                    emit(&output::describe_plan(&plan));
                }
                return Ok(());
            }
            let bars = (!json).then(|| progress::Bars::for_plan(&plan));
            let summary = write_tracks(plan.start()?, &out, bars.as_ref())?;
            report(&summary, json)?;
        }
        Command::Package {
            inputs,
            out,
            segment_duration,
            single_file,
            mut subtitles,
            audio,
            dash_text,
            trick_play,
            encryption,
            json,
        } => {
            if let Some(name) = &trick_play {
                let known = inputs.iter().any(|i| {
                    i.file_stem().is_some_and(|s| {
                        reel_packager::safe_file_name(&s.to_string_lossy()) == *name
                    })
                });
                if !known {
                    bail!("--trick-play {name}: no input file is named {name} (its stem)");
                }
            }
            for s in &mut subtitles {
                s.dash_text = dash_text;
            }
            let content_id = encryption.content_id.clone().unwrap_or_else(|| {
                out.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "reel".into())
            });
            let protection = encryption.protection(&content_id)?;
            let opts = reel_packager::PackageOptions {
                segment_duration,
                addressing: if single_file {
                    reel_packager::Addressing::SingleFile
                } else {
                    reel_packager::Addressing::SegmentFiles
                },
                expected_duration: None,
                protection,
                segment_written: None,
                trick_play,
            };
            // Fail closed: a failed run leaves no folder behind that it created (and never
            // a manifest, which is written last).
            let existed = out.exists();
            let tracks =
                package::run(&inputs, &audio, &subtitles, &out, opts).inspect_err(|_| {
                    if !existed {
                        let _ = std::fs::remove_dir_all(&out);
                    }
                })?;
            package::report(&out, &tracks, json)?;
        }
        Command::Keys {
            command:
                KeysCommand::Generate {
                    out,
                    classes,
                    content_id,
                },
        } => emit(&keys::generate(&out, classes.as_deref(), &content_id)?),
        Command::Publish {
            folder,
            to,
            endpoint,
            region,
            virtual_hosted,
            create_bucket,
            journal,
            parallel,
            json,
        } => publish_folder(
            &folder,
            &to,
            endpoint,
            region,
            !virtual_hosted,
            create_bucket,
            journal,
            parallel,
            json,
        )?,
        Command::Demux { file, out, json } => {
            let summary = write_tracks(reel_encoder::demux(&file)?, &out, None)?;
            report(&summary, json)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn publish_folder(
    folder: &Path,
    to: &str,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: bool,
    create_bucket: bool,
    journal: Option<PathBuf>,
    parallel: usize,
    json: bool,
) -> Result<()> {
    use reel_publish::{Destination, Journal, PublishOptions, S3Options};
    if !folder.is_dir() {
        bail!("{}: not a folder", folder.display());
    }
    let audio: Vec<String> = std::fs::read(folder.join("title.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<reel_pipeline::TitleRecord>(&b).ok())
        .map(|r| r.audio_renditions().map(str::to_string).collect())
        .unwrap_or_else(|| vec!["audio".into()]);
    let uploads = reel_pipeline::folder_uploads(folder, &|stem| audio.iter().any(|a| a == stem))?;
    let mut o = S3Options {
        create_bucket,
        ..S3Options::at(endpoint, region, Some(path_style))
    };
    let journal_path = journal.unwrap_or_else(|| {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "title".into());
        folder.with_file_name(format!("{name}.published.jsonl"))
    });
    // Multipart uploads in progress, beside the journal: the next publish aborts those a
    // killed one left open.
    o.pending_uploads = Some(journal_path.with_extension("multipart.jsonl"));
    let store = Destination::parse(to)?.open(&o)?;
    let mut journal = Journal::open(&journal_path)?;
    let opts = PublishOptions {
        parallel,
        cancel: None,
    };
    let r = reel_publish::publish(store.as_ref(), &uploads, &mut journal, &opts, &mut |_| {})?;
    let text = if json {
        format!(
            "{}\n",
            serde_json::json!({"location": store.location(), "uploaded": r.uploaded,
                "already_published": r.skipped, "bytes_uploaded": r.bytes_uploaded})
        )
    } else {
        format!(
            "{}: {} objects uploaded ({:.1} MB), {} already there\n",
            store.location(),
            r.uploaded,
            r.bytes_uploaded as f64 / 1e6,
            r.skipped
        )
    };
    emit(&text);
    Ok(())
}

fn report(summary: &[output::TrackSummary], json: bool) -> Result<()> {
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(summary)?));
    } else {
        emit(&output::describe_tracks(summary));
    }
    Ok(())
}

/// Writes every track of `stream` to `out/NAME.mp4`. Files are renamed into place only after
/// the whole stream ended without error, so a failed run leaves no complete-looking output.
fn write_tracks(
    stream: SampleStream,
    out: &Path,
    bars: Option<&progress::Bars>,
) -> Result<Vec<output::TrackSummary>> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut writers: Vec<output::TrackWriter> = Vec::new();
    for event in stream {
        match event? {
            Event::Track(info) => writers.push(output::TrackWriter::create(out, info)?),
            Event::Sample { track, sample } => {
                let w = writers
                    .iter_mut()
                    .find(|w| w.id() == track)
                    .with_context(|| format!("sample for unannounced track {track}"))?;
                w.push(sample)?;
            }
            Event::Progress(p) => {
                if let Some(b) = bars {
                    b.update(&p);
                }
            }
            Event::TrackEnd { track } => {
                if let Some(b) = bars {
                    b.finish(track);
                }
            }
            Event::Notice(n) => {
                if let Some(b) = bars {
                    b.println(&format!("note: {n}"));
                } else {
                    eprintln!("note: {n}");
                }
            }
            Event::Still { .. } | Event::Thumbnail { .. } => {}
        }
    }
    if writers.is_empty() {
        bail!("no tracks were produced");
    }
    writers.sort_by_key(|w| w.id());
    writers.into_iter().map(|w| w.finish()).collect()
}
