//! Scaling decoded frames to every rung size, once per size, into each size's encoders.

use crate::stream::{Event, Feed};
use gstreamer as gst;
use gstreamer_app as gst_app;
use reel_media::Rational;

/// Decoded I420 frames scaled to every rung size (`resize`, SIMD Lanczos-3) and pushed into
/// that size's appsrc; the source's own size gets the same buffer. Caps follow the source's,
/// with the rung size, square pixels and the source's colorimetry: sample values are never
/// converted between matrices, and every rung carries the same colour tags.
pub(crate) struct ScaleState {
    outputs: Vec<((u32, u32), gst_app::AppSrc)>,
    infos: Vec<Option<gstreamer_video::VideoInfo>>,
    scaler: crate::resize::PlaneScaler,
    caps_set: bool,
    /// Frames seen so far, and the one to hand over as a still.
    count: u64,
    /// One frame at the output rate, in nanoseconds.
    frame_ns: u64,
    still_at: Option<u64>,
    feed: Feed,
}

impl ScaleState {
    pub(crate) fn new(
        outputs: Vec<((u32, u32), gst_app::AppSrc)>,
        still_at: Option<u64>,
        frame_rate: Rational,
        feed: Feed,
    ) -> ScaleState {
        ScaleState {
            frame_ns: 1_000_000_000 * u64::from(frame_rate.den) / u64::from(frame_rate.num.max(1)),
            infos: vec![None; outputs.len()],
            outputs,
            scaler: crate::resize::PlaneScaler::default(),
            caps_set: false,
            count: 0,
            still_at,
            feed,
        }
    }

    /// Scales and pushes one frame; `Ok(false)` when the pipeline is stopping.
    pub(crate) fn push(&mut self, sample: &gst::Sample) -> Result<bool, String> {
        use gstreamer_video as gst_video;
        use gstreamer_video::prelude::*;
        self.feed.pulse.beat();
        let (Some(caps), Some(buffer)) = (sample.caps(), sample.buffer_owned()) else {
            return Err("the decoder gave a frame without caps or data".into());
        };
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| format!("decoded frames have caps {caps}: {e}"))?;
        if !self.caps_set {
            for (i, ((w, h), src)) in self.outputs.iter().enumerate() {
                let mut c = caps.copy();
                {
                    let c = c.make_mut();
                    c.set("width", *w as i32);
                    c.set("height", *h as i32);
                    c.set("pixel-aspect-ratio", gst::Fraction::new(1, 1));
                    // The source's colorimetry, stated: left out, GStreamer would guess it from
                    // each rung's size (BT.709 from 720 lines up, BT.601 below), so rungs of
                    // one title would be tagged (and converted) differently.
                    c.set("colorimetry", info.colorimetry().to_string());
                }
                self.infos[i] = Some(
                    gst_video::VideoInfo::from_caps(&c)
                        .map_err(|e| format!("rung caps {c}: {e}"))?,
                );
                src.set_caps(Some(&c));
            }
            self.caps_set = true;
        }
        // The appsrcs start their own segments at 0: frames go out stamped with their running
        // time in the decoder's segment (a source whose first frame is at 0.08 s, after an
        // edit list, still starts at 0).
        let pts = buffer.pts().map(|t| {
            sample
                .segment()
                .and_then(|seg| seg.downcast_ref::<gst::ClockTime>())
                .and_then(|seg| seg.to_running_time(t))
                .unwrap_or(t)
        });
        if self.still_at == Some(self.count) {
            let picture = crate::raw::picture_from(buffer.as_ref(), &info)?;
            self.feed.event(Event::Still {
                frame: self.count,
                picture,
            });
        }
        // A video that starts after the presentation does (an edit list's empty edit, audio
        // recorded first) is led in by its first frame, held from 0, so that every track
        // starts at 0 and stays where the container puts it.
        let lead_in = match (self.count, pts) {
            (0, Some(first)) if first.nseconds() > self.frame_ns / 2 => {
                let n = (first.nseconds() + self.frame_ns / 2) / self.frame_ns;
                self.feed.event(Event::Notice(format!(
                    "the video starts {:.3} s into the presentation: its first frame is shown from 0",
                    first.nseconds() as f64 / 1e9
                )));
                n
            }
            _ => 0,
        };
        self.count += 1;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
            .map_err(|_| "cannot map a decoded frame".to_string())?;
        for (i, ((w, h), src)) in self.outputs.iter().enumerate() {
            let out = if (*w, *h) == (info.width(), info.height()) {
                // A new buffer sharing the frame's memory, with its own timestamps.
                let mut b = buffer.copy();
                {
                    let b = b.get_mut().expect("a copy is writable");
                    b.set_pts(pts);
                    b.set_dts(gst::ClockTime::NONE);
                }
                b
            } else {
                let oinfo = self.infos[i].as_ref().expect("set with the caps");
                let mut out = gst::Buffer::with_size(oinfo.size())
                    .map_err(|_| "cannot allocate a scaled frame".to_string())?;
                {
                    let ob = out.get_mut().expect("a new buffer is writable");
                    ob.set_pts(pts);
                    ob.set_duration(buffer.duration());
                    ob.set_offset(buffer.offset());
                    let mut of = gst_video::VideoFrameRef::from_buffer_ref_writable(ob, oinfo)
                        .map_err(|_| "cannot map a scaled frame".to_string())?;
                    for p in 0..3u32 {
                        let (sw, sh) = (info.comp_width(p as u8), info.comp_height(p as u8));
                        let (dw, dh) = (oinfo.comp_width(p as u8), oinfo.comp_height(p as u8));
                        let sstride = frame.plane_stride()[p as usize] as usize;
                        let dstride = of.plane_stride()[p as usize] as usize;
                        let src_plane = frame
                            .plane_data(p)
                            .map_err(|_| "a decoded frame lacks a plane".to_string())?;
                        let dst_plane = of
                            .plane_data_mut(p)
                            .map_err(|_| "a scaled frame lacks a plane".to_string())?;
                        self.scaler
                            .plane(src_plane, sw, sh, sstride, dst_plane, dw, dh, dstride)?;
                    }
                }
                out
            };
            for k in 0..lead_in {
                let mut held = out.copy();
                {
                    let b = held.get_mut().expect("a copy is writable");
                    b.set_pts(gst::ClockTime::from_nseconds(k * self.frame_ns));
                    b.set_duration(gst::ClockTime::from_nseconds(self.frame_ns));
                }
                if src.push_buffer(held).is_err() {
                    return Ok(false);
                }
            }
            if src.push_buffer(out).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
