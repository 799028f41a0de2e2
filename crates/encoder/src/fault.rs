//! Fault injection, for the tests of faults that no real input provokes on demand. Read from
//! the environment here and nowhere else; without the variables nothing changes.
//!
//! - `REEL_FAULT_STALL_AFTER_FRAMES=N`: the decoded video stops after N frames, with neither
//!   an error nor an end of stream (the streaming thread waits until the pipeline stops), as
//!   a decoder that hangs or a network share that stops answering does. The stall bound
//!   (`REEL_STALL_SECONDS`) must turn it into an error naming the file and the stage.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Installs the configured faults on `pad`, the decoded video entering the encoders.
pub(crate) fn on_decoded_video(pad: &gst::Pad) {
    let Some(after) = std::env::var("REEL_FAULT_STALL_AFTER_FRAMES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let seen = AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        if seen.fetch_add(1, Ordering::Relaxed) < after {
            return gst::PadProbeReturn::Ok;
        }
        // Hold the streaming thread until the pipeline is stopped (the pad then flushes).
        while !pad.pad_flags().contains(gst::PadFlags::FLUSHING) {
            std::thread::sleep(Duration::from_millis(20));
        }
        gst::PadProbeReturn::Ok
    });
}
