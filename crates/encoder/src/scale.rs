//! Scaling decoded frames to every rung size, once per size, into each size's encoders.

use crate::plan::FrameRange;
use crate::stream::{Event, Feed};
use gstreamer as gst;
use gstreamer_app as gst_app;
use reel_media::Rational;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Decoded I420 frames scaled to every rung size (`resize`, SIMD Lanczos-3) and pushed into
/// that size's appsrc; the source's own size gets the same buffer. Caps follow the source's,
/// with the rung size, square pixels and the source's colorimetry: sample values are never
/// converted between matrices, and every rung carries the same colour tags.
///
/// Each frame's place on the output grid (its index, counted from the title's start) comes
/// from its stream time, so a chunk decoded after a seek lands where it does in the whole
/// title; frames outside the range are dropped, and missing places before a frame (a video
/// that starts after the presentation does, a seek that lands late) are filled with it.
pub(crate) struct ScaleState {
    outputs: Vec<((u32, u32), gst_app::AppSrc)>,
    infos: Vec<Option<gstreamer_video::VideoInfo>>,
    scaler: crate::resize::PlaneScaler,
    caps_set: bool,
    frame_rate: Rational,
    /// The frames to deliver (from the lead-in's first).
    range: FrameRange,
    /// The next index to deliver.
    next: u64,
    /// The last frame delivered to each output, held to pad an exact range that ends early.
    last: Vec<Option<gst::Buffer>>,
    /// Every output has had its end of stream.
    ended: bool,
    /// A chunk: the decode started with a seek, so frames are placed by their timestamp less
    /// `origin` (set by the seek; see `encode::seek_to_range`).
    seeked: bool,
    origin: Arc<AtomicI64>,
    still_at: Option<u64>,
    thumbnails: Option<crate::plan::ThumbnailPlan>,
    feed: Feed,
}

impl ScaleState {
    pub(crate) fn new(
        outputs: Vec<((u32, u32), gst_app::AppSrc)>,
        still_at: Option<u64>,
        thumbnails: Option<crate::plan::ThumbnailPlan>,
        frame_rate: Rational,
        range: Option<FrameRange>,
        origin: Arc<AtomicI64>,
        feed: Feed,
    ) -> ScaleState {
        let seeked = range.is_some();
        let mut range = range.unwrap_or(FrameRange {
            start: 0,
            end: u64::MAX,
            exact: false,
            lead_in: 0,
        });
        if !range.exact {
            // The title's last chunk, or the whole title: on to the source's end.
            range.end = u64::MAX;
        }
        ScaleState {
            infos: vec![None; outputs.len()],
            last: vec![None; outputs.len()],
            outputs,
            scaler: crate::resize::PlaneScaler::default(),
            caps_set: false,
            frame_rate,
            next: range.first(),
            range,
            ended: false,
            seeked,
            origin,
            still_at,
            thumbnails,
            feed,
        }
    }

    /// The output-grid index nearest to `ns` nanoseconds.
    fn index_at(&self, ns: u64) -> u64 {
        let (num, den) = (
            u128::from(self.frame_rate.num.max(1)),
            u128::from(self.frame_rate.den.max(1)),
        );
        ((u128::from(ns) * num * 2 + den * 1_000_000_000) / (den * 2_000_000_000)) as u64
    }

    /// Presentation time of index `i` in the outputs, which start at the range's first frame.
    fn time_of(&self, i: u64) -> gst::ClockTime {
        let (num, den) = (
            u128::from(self.frame_rate.num.max(1)),
            u128::from(self.frame_rate.den.max(1)),
        );
        let k = u128::from(i - self.range.first());
        gst::ClockTime::from_nseconds(((k * den * 1_000_000_000 + num / 2) / num) as u64)
    }

    fn frame_ns(&self) -> u64 {
        crate::timing::frames_ns(1, self.frame_rate)
    }

    /// Scales and pushes one frame; `Ok(false)` when the pipeline is stopping.
    pub(crate) fn push(&mut self, sample: &gst::Sample) -> Result<bool, String> {
        use gstreamer_video as gst_video;
        self.feed.pulse.beat();
        if self.ended {
            return Ok(true);
        }
        let (Some(caps), Some(buffer)) = (sample.caps(), sample.buffer_owned()) else {
            return Err("the decoder gave a frame without caps or data".into());
        };
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| format!("decoded frames have caps {caps}: {e}"))?;
        if !self.caps_set {
            self.set_caps(caps, &info)?;
        }
        // The frame's time in the title. A whole-title decode (never seeked) counts running
        // time, which starts at 0 whatever timestamps the container starts from; a chunk,
        // decoded after a seek whose segment restarts running time, counts from the origin
        // the whole-title decode would have had.
        let origin = self.origin.load(Ordering::Relaxed);
        let Some(ns) = buffer.pts().map(|t| {
            if self.seeked && origin != crate::encode::NO_ORIGIN {
                return (t.nseconds() as i64).saturating_sub(origin).max(0) as u64;
            }
            sample
                .segment()
                .and_then(|seg| seg.downcast_ref::<gst::ClockTime>())
                .and_then(|seg| seg.to_running_time(t))
                .unwrap_or(t)
                .nseconds()
        }) else {
            return Err("the decoder gave a frame without a timestamp".into());
        };
        let index = self.index_at(ns);
        if index < self.next {
            return Ok(true);
        }
        if index >= self.range.end {
            self.end();
            return Ok(true);
        }
        if let Some(s) = self.still_at.filter(|s| (self.next..=index).contains(s)) {
            let picture = crate::raw::picture_from(buffer.as_ref(), &info)?;
            self.feed.event(Event::Still { frame: s, picture });
        }
        self.thumbnails_of(buffer.as_ref(), &info, index)?;
        if index > self.next && self.next == 0 {
            // A video that starts after the presentation does (an edit list's empty edit,
            // audio recorded first) is led in by its first frame, held from 0, so that every
            // track starts at 0 and stays where the container puts it.
            self.feed.event(Event::Notice(format!(
                "the video starts {:.3} s into the presentation: its first frame is shown from 0",
                ns as f64 / 1e9
            )));
        } else if index > self.next + 1 {
            self.feed.event(Event::Notice(format!(
                "frames {}..{} were missing from the decode: the next frame is held over them",
                self.next, index
            )));
        }
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
            .map_err(|_| "cannot map a decoded frame".to_string())?;
        for o in 0..self.outputs.len() {
            let out = self.scaled(o, &buffer, &frame, &info)?;
            for i in self.next..=index {
                if !self.push_at(o, &out, i) {
                    return Ok(false);
                }
            }
            self.last[o] = Some(out);
        }
        self.next = index + 1;
        if self.next >= self.range.end {
            self.end();
        }
        Ok(true)
    }

    /// The thumbnails of the places `next..=index` (which this frame fills), past a chunk's
    /// lead-in: the frame scaled to the thumbnail size, once for all of them.
    fn thumbnails_of(
        &mut self,
        buffer: &gst::BufferRef,
        info: &gstreamer_video::VideoInfo,
        index: u64,
    ) -> Result<(), String> {
        let Some(plan) = self.thumbnails else {
            return Ok(());
        };
        let frames: Vec<u64> = (self.next.max(self.range.start)..=index)
            .filter(|&f| plan.takes(f))
            .collect();
        if frames.is_empty() {
            return Ok(());
        }
        let picture = crate::raw::picture_from(buffer, info)?;
        let tile = self.scaler.picture(&picture, plan.width, plan.height)?;
        for frame in frames {
            self.feed.event(Event::Thumbnail {
                frame,
                picture: tile.clone(),
            });
        }
        Ok(())
    }

    /// The source's end: an exact range that the source left short is padded with its last
    /// frame (a notice says so), then every output ends.
    pub(crate) fn finish(&mut self) {
        if self.ended {
            return;
        }
        if self.range.exact && self.next > self.range.first() && self.next < self.range.end {
            self.feed.event(Event::Notice(format!(
                "the source ended {} frames before frame {}: the last frame is held",
                self.range.end - self.next,
                self.range.end
            )));
            for o in 0..self.outputs.len() {
                let Some(last) = self.last[o].clone() else {
                    continue;
                };
                for i in self.next..self.range.end {
                    if !self.push_at(o, &last, i) {
                        break;
                    }
                }
            }
            self.next = self.range.end;
        }
        self.end();
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            for (_, src) in &self.outputs {
                let _ = src.end_of_stream();
            }
        }
    }

    /// Pushes `out` as the frame at index `i` into output `o`; false when the pipeline stops.
    fn push_at(&self, o: usize, out: &gst::Buffer, i: u64) -> bool {
        let mut b = out.copy();
        {
            let b = b.get_mut().expect("a copy is writable");
            b.set_pts(self.time_of(i));
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::from_nseconds(self.frame_ns()));
        }
        self.outputs[o].1.push_buffer(b).is_ok()
    }

    /// Caps for every output: the source's, with the rung size, square pixels and the
    /// source's colorimetry stated.
    fn set_caps(
        &mut self,
        caps: &gst::CapsRef,
        info: &gstreamer_video::VideoInfo,
    ) -> Result<(), String> {
        for (i, ((w, h), src)) in self.outputs.iter().enumerate() {
            let mut c = caps.to_owned();
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
                gstreamer_video::VideoInfo::from_caps(&c)
                    .map_err(|e| format!("rung caps {c}: {e}"))?,
            );
            src.set_caps(Some(&c));
        }
        self.caps_set = true;
        Ok(())
    }

    /// The frame at output `o`'s size: the decoded buffer itself at the source's size.
    fn scaled(
        &mut self,
        o: usize,
        buffer: &gst::Buffer,
        frame: &gstreamer_video::VideoFrameRef<&gst::BufferRef>,
        info: &gstreamer_video::VideoInfo,
    ) -> Result<gst::Buffer, String> {
        use gstreamer_video as gst_video;
        use gstreamer_video::prelude::*;
        let (w, h) = self.outputs[o].0;
        if (w, h) == (info.width(), info.height()) {
            return Ok(buffer.clone());
        }
        let oinfo = self.infos[o].as_ref().expect("set with the caps");
        let mut out = gst::Buffer::with_size(oinfo.size())
            .map_err(|_| "cannot allocate a scaled frame".to_string())?;
        {
            let ob = out.get_mut().expect("a new buffer is writable");
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
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(num: u32, den: u32, start: u64) -> ScaleState {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        ScaleState::new(
            Vec::new(),
            None,
            None,
            Rational::new(num, den),
            Some(FrameRange {
                start,
                end: start + 100,
                exact: true,
                lead_in: 0,
            }),
            Arc::new(AtomicI64::new(0)),
            Feed::new(tx),
        )
    }

    #[test]
    fn frames_are_placed_on_the_title_grid_by_time() {
        let s = state(30_000, 1001, 0);
        assert_eq!(s.index_at(0), 0);
        assert_eq!(s.index_at(33_366_666), 1);
        // Two hours of NTSC frames: no drift from a rounded frame duration.
        assert_eq!(s.index_at(7_200_000_000_000 * 1001 / 1001), 215_784);
        assert_eq!(s.index_at(16_683_334), 1, "half a frame rounds up");
        assert_eq!(
            s.index_at(16_683_333),
            0,
            "just under half a frame rounds down"
        );
        let s = state(25, 1, 750);
        assert_eq!(s.index_at(30_000_000_000), 750);
        assert_eq!(s.time_of(750), gst::ClockTime::ZERO, "a chunk starts at 0");
        assert_eq!(s.time_of(751), gst::ClockTime::from_mseconds(40));
    }
}
