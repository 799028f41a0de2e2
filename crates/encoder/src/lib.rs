//! Reel's GStreamer side: probe a mezzanine, decode it once, scale it to every rung of a
//! [`Ladder`] in the same pass, and encode all rungs concurrently (AV1 through the `rav1e`
//! crate, H.264 through `x264enc`, AAC-LC or Opus audio). Already-encoded files are demuxed
//! into the same [`Event`] stream without re-encoding ([`demux`]).
//!
//! Output is a bounded stream of [`Event`]s: a [`TrackInfo`](reel_media::TrackInfo) before each
//! track's first sample, then [`EncodedSample`](reel_media::EncodedSample)s, progress reports,
//! and the end of each track. Nothing here knows about segments, manifests or keys.
//!
//! ```no_run
//! use reel_encoder::{encode, Event, Ladder};
//! let ladder = Ladder::builtin("h264").unwrap();
//! for event in encode("mezzanine.mp4".as_ref(), &ladder).unwrap() {
//!     match event.unwrap() {
//!         Event::Track(info) => println!("track {} is {}", info.id, info.config.codec_string()),
//!         Event::Sample { track, sample } => { let _ = (track, sample.data.len()); }
//!         Event::Progress(p) => println!("{}: {} frames", p.track, p.frames_done),
//!         Event::TrackEnd { .. } | Event::Notice(_) => {}
//!         Event::Still { .. } | Event::Thumbnail { .. } => {}
//!     }
//! }
//! ```

mod av1enc;
mod coded;
mod demux;
mod encode;
mod error;
mod fault;
mod gst_util;
mod ladder;
mod mp4demux;
mod plan;
mod probe;
mod raw;
pub mod resize;
mod scale;
mod stream;
mod text;
mod timing;
mod x264;

pub use demux::{demux, summary};
pub use encode::encode;
pub use error::EncodeError;
pub use ladder::{AudioSpec, BuiltinLadder, Ladder, LadderChoice, RateControl, Rung, VideoEncoder};
pub use plan::{
    even, keyframe_frames, needs_own_height, AudioInput, AudioPlan, EncodePlan, FrameRange,
    RungPlan, ThumbnailPlan,
};
pub use probe::{probe, AudioStream, MediaInfo, StreamInfo, VideoStream};
pub use raw::{
    decode_frames, decode_pictures, scale_pictures, trial_encode, DecodedFrame, TrialSpec,
};
pub use stream::{stall_limit, Event, Progress, SampleStream};
pub use text::{text_tracks, SourceText, TextSample};
pub use timing::video_timescale;
