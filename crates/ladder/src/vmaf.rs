//! VMAF through Netflix's libvmaf (`libvmaf-sys`, built from its vendored sources; GPL-3.0
//! licensed, hence behind the `vmaf` feature). Model `vmaf_v0.6.1`, built into libvmaf.

use crate::LadderError;
use libvmaf_sys as ffi;
use reel_media::Picture;
use std::ffi::CString;
use std::ptr;

/// One VMAF computation: feed reference/distorted picture pairs in order, then read the
/// per-frame scores.
///
/// ```
/// # #[cfg(feature = "vmaf")] {
/// use reel_ladder::Vmaf;
/// use reel_media::Picture;
/// let mut vmaf = Vmaf::new(64, 64, 1).unwrap();
/// let p = Picture::filled(64, 64, 90, 128);
/// vmaf.push(&p, &p).unwrap();
/// vmaf.push(&p, &p).unwrap();
/// let scores = vmaf.finish().unwrap();
/// assert_eq!(scores.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
/// # }
/// ```
pub struct Vmaf {
    ctx: *mut ffi::VmafContext,
    model: *mut ffi::VmafModel,
    width: u32,
    height: u32,
    frames: u32,
    subsample: u32,
    /// Motion computed beforehand (see [`ReferenceMotion`]); only scored frames are pushed.
    motion: Option<ReferenceMotion>,
    /// Indices of the frames pushed with [`Vmaf::push_at`].
    scored: Vec<u32>,
}

/// The name libvmaf's integer motion feature stores its score under in `vmaf_v0.6.1`.
const MOTION2: &str = "VMAF_integer_feature_motion2_score";

/// VMAF's temporal feature (motion2) of a reference sequence. It depends on the reference
/// only, so the trials of one window can share it: computed once here, imported by each
/// [`Vmaf::with_motion`], which then runs only the spatial features, only on the frames it
/// scores.
///
/// ```
/// # #[cfg(feature = "vmaf")] {
/// use reel_ladder::{ReferenceMotion, Vmaf};
/// use reel_media::Picture;
/// let frames: Vec<Picture> = (0..4).map(|i| Picture::filled(64, 64, 60 + 20 * i, 128)).collect();
/// let motion = ReferenceMotion::compute(&frames).unwrap();
/// let mut vmaf = Vmaf::with_motion(64, 64, motion).unwrap();
/// vmaf.push_at(2, &frames[2], &frames[2]).unwrap();
/// assert_eq!(vmaf.finish().unwrap().len(), 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReferenceMotion {
    scores: Vec<f64>,
}

impl ReferenceMotion {
    /// Runs libvmaf's motion feature over `frames`.
    pub fn compute(frames: &[Picture]) -> Result<ReferenceMotion, LadderError> {
        let Some(first) = frames.first() else {
            return Ok(ReferenceMotion { scores: Vec::new() });
        };
        let mut v = Vmaf::context(first.width, first.height, 1, 0)?;
        let name = CString::new("motion").unwrap();
        // SAFETY: the name outlives the call; no options dictionary.
        check("motion feature setup", unsafe {
            ffi::vmaf_use_feature(v.ctx, name.as_ptr(), ptr::null_mut())
        })?;
        for f in frames {
            v.push(f, f)?;
        }
        v.flush()?;
        let feature = CString::new(MOTION2).unwrap();
        let scores = (0..v.frames)
            .map(|i| {
                let mut score = 0.0;
                check("motion score", unsafe {
                    ffi::vmaf_feature_score_at_index(v.ctx, feature.as_ptr(), &mut score, i)
                })?;
                Ok(score)
            })
            .collect::<Result<_, LadderError>>()?;
        Ok(ReferenceMotion { scores })
    }

    /// Frames it covers.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

// The context is only ever used by the thread that owns the `Vmaf`.
unsafe impl Send for Vmaf {}

fn check(what: &str, rc: i32) -> Result<(), LadderError> {
    if rc < 0 {
        Err(LadderError::Metric(format!(
            "libvmaf {what} failed (error {rc})"
        )))
    } else {
        Ok(())
    }
}

impl Vmaf {
    /// A VMAF computation for pictures of `width` x `height`, one thread, scoring every
    /// `subsample`-th frame (libvmaf still runs its motion feature on every frame, so the
    /// scores of the frames it scores are those of a full run).
    pub fn new(width: u32, height: u32, subsample: u32) -> Result<Vmaf, LadderError> {
        Vmaf::with_threads(width, height, subsample, 0)
    }

    /// As [`Vmaf::new`], with libvmaf's own thread pool of `threads` threads (0: none).
    pub fn with_threads(
        width: u32,
        height: u32,
        subsample: u32,
        threads: u32,
    ) -> Result<Vmaf, LadderError> {
        let mut v = Vmaf::context(width, height, subsample, threads)?;
        v.load_model()?;
        check("feature setup", unsafe {
            ffi::vmaf_use_features_from_model(v.ctx, v.model)
        })?;
        Ok(v)
    }

    /// A VMAF computation that takes its motion from `motion` and scores only the frames
    /// given to [`Vmaf::push_at`] (one thread). Scores are those of a full run.
    pub fn with_motion(
        width: u32,
        height: u32,
        motion: ReferenceMotion,
    ) -> Result<Vmaf, LadderError> {
        let mut v = Vmaf::context(width, height, 1, 0)?;
        v.load_model()?;
        for feature in ["vif", "adm"] {
            let name = CString::new(feature).unwrap();
            // SAFETY: the name outlives the call; no options (as the model has none).
            check("feature setup", unsafe {
                ffi::vmaf_use_feature(v.ctx, name.as_ptr(), ptr::null_mut())
            })?;
        }
        v.motion = Some(motion);
        Ok(v)
    }

    fn context(width: u32, height: u32, subsample: u32, threads: u32) -> Result<Vmaf, LadderError> {
        let subsample = subsample.max(1);
        let cfg = ffi::VmafConfiguration {
            log_level: ffi::VmafLogLevel::VMAF_LOG_LEVEL_NONE,
            n_threads: threads,
            n_subsample: subsample,
            cpumask: 0,
        };
        let mut ctx = ptr::null_mut();
        // SAFETY: libvmaf writes a new context pointer into `ctx`.
        check("init", unsafe { ffi::vmaf_init(&mut ctx, cfg) })?;
        Ok(Vmaf {
            ctx,
            model: ptr::null_mut(),
            width,
            height,
            frames: 0,
            subsample,
            motion: None,
            scored: Vec::new(),
        })
    }

    fn load_model(&mut self) -> Result<(), LadderError> {
        let name = CString::new("vmaf").unwrap();
        let version = CString::new("vmaf_v0.6.1").unwrap();
        let mut mcfg = ffi::VmafModelConfig {
            name: name.as_ptr(),
            flags: 0,
        };
        // SAFETY: the strings outlive the calls; libvmaf copies what it keeps.
        check("model load", unsafe {
            ffi::vmaf_model_load(&mut self.model, &mut mcfg, version.as_ptr())
        })
    }

    fn picture(&self, p: &Picture) -> Result<ffi::VmafPicture, LadderError> {
        if p.width != self.width || p.height != self.height {
            return Err(LadderError::Metric(format!(
                "VMAF set up for {}x{} was given a {}x{} picture",
                self.width, self.height, p.width, p.height
            )));
        }
        // SAFETY: a zeroed VmafPicture is the "empty" state vmaf_picture_alloc expects.
        let mut pic: ffi::VmafPicture = unsafe { std::mem::zeroed() };
        check("picture alloc", unsafe {
            ffi::vmaf_picture_alloc(
                &mut pic,
                ffi::VmafPixelFormat::VMAF_PIX_FMT_YUV420P,
                8,
                self.width,
                self.height,
            )
        })?;
        for i in 0..3 {
            let (w, h) = p.plane_size(i);
            let stride = pic.stride[i] as usize;
            for row in 0..h as usize {
                let src = &p.planes[i][row * w as usize..(row + 1) * w as usize];
                // SAFETY: libvmaf allocated `h` rows of `stride >= w` bytes for plane i.
                unsafe {
                    ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        (pic.data[i] as *mut u8).add(row * stride),
                        w as usize,
                    );
                }
            }
        }
        Ok(pic)
    }

    /// Adds the next frame pair.
    pub fn push(&mut self, reference: &Picture, distorted: &Picture) -> Result<(), LadderError> {
        if self.motion.is_some() {
            return Err(LadderError::Metric(
                "a VMAF with shared motion takes frames by index (push_at)".into(),
            ));
        }
        self.read(self.frames, reference, distorted)?;
        self.frames += 1;
        Ok(())
    }

    /// Adds frame `index` of the window (with shared motion; indices increasing).
    pub fn push_at(
        &mut self,
        index: u32,
        reference: &Picture,
        distorted: &Picture,
    ) -> Result<(), LadderError> {
        let Some(motion) = &self.motion else {
            return Err(LadderError::Metric(
                "push_at needs a VMAF with shared motion (Vmaf::with_motion)".into(),
            ));
        };
        let Some(&m) = motion.scores.get(index as usize) else {
            return Err(LadderError::Metric(format!(
                "frame {index} is beyond the {} frames of the shared motion",
                motion.scores.len()
            )));
        };
        if self.scored.last().is_some_and(|&last| index <= last) {
            return Err(LadderError::Metric(format!(
                "frame {index} pushed after frame {}",
                self.scored.last().unwrap()
            )));
        }
        let feature = CString::new(MOTION2).unwrap();
        // SAFETY: the name outlives the call.
        check("motion import", unsafe {
            ffi::vmaf_import_feature_score(self.ctx, feature.as_ptr(), m, index)
        })?;
        self.read(index, reference, distorted)?;
        self.scored.push(index);
        self.frames += 1;
        Ok(())
    }

    fn read(
        &mut self,
        index: u32,
        reference: &Picture,
        distorted: &Picture,
    ) -> Result<(), LadderError> {
        let mut r = self.picture(reference)?;
        let mut d = match self.picture(distorted) {
            Ok(d) => d,
            Err(e) => {
                unsafe { ffi::vmaf_picture_unref(&mut r) };
                return Err(e);
            }
        };
        // SAFETY: libvmaf takes ownership of both pictures.
        check("read pictures", unsafe {
            ffi::vmaf_read_pictures(self.ctx, &mut r, &mut d, index)
        })
    }

    fn flush(&mut self) -> Result<(), LadderError> {
        // SAFETY: null pictures flush the context.
        check("flush", unsafe {
            ffi::vmaf_read_pictures(self.ctx, ptr::null_mut(), ptr::null_mut(), 0)
        })
    }

    /// Flushes and returns `(frame index, score)` of every scored frame, in order.
    pub fn finish(mut self) -> Result<Vec<(u32, f64)>, LadderError> {
        if self.frames == 0 {
            return Ok(Vec::new());
        }
        self.flush()?;
        let indices: Vec<u32> = if self.motion.is_some() {
            std::mem::take(&mut self.scored)
        } else {
            (0..self.frames).step_by(self.subsample as usize).collect()
        };
        indices
            .into_iter()
            .map(|i| {
                let mut score = 0.0;
                check("score", unsafe {
                    ffi::vmaf_score_at_index(self.ctx, self.model, &mut score, i)
                })?;
                Ok((i, score))
            })
            .collect()
    }
}

impl Drop for Vmaf {
    fn drop(&mut self) {
        // SAFETY: both were created by libvmaf and are released once.
        unsafe {
            if !self.model.is_null() {
                ffi::vmaf_model_destroy(self.model);
            }
            if !self.ctx.is_null() {
                ffi::vmaf_close(self.ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured picture moving right by `t` pixels per frame, with a fixed-seed noise.
    fn pattern(w: u32, h: u32, t: u32) -> Picture {
        let mut p = Picture::filled(w, h, 0, 128);
        let mut seed = 12345u32;
        for y in 0..h {
            for x in 0..w {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let xs = x + 3 * t;
                let v = 128.0
                    + 60.0 * ((xs as f64 / 7.0).sin() * (y as f64 / 5.0).cos())
                    + ((seed >> 16) % 16) as f64;
                p.planes[0][(y * w + x) as usize] = v.clamp(0.0, 255.0) as u8;
            }
        }
        p
    }

    /// A 3-tap horizontal blur of the luma: a distortion VMAF sees.
    fn blurred(p: &Picture) -> Picture {
        let mut d = p.clone();
        let w = p.width as usize;
        for row in p.planes[0].chunks(w).enumerate() {
            for x in 1..w - 1 {
                let s = row.1[x - 1] as u32 + 2 * row.1[x] as u32 + row.1[x + 1] as u32;
                d.planes[0][row.0 * w + x] = (s / 4) as u8;
            }
        }
        d
    }

    #[test]
    fn shared_motion_scores_as_a_full_run() {
        let (w, h) = (176, 144);
        let refs: Vec<Picture> = (0..9).map(|t| pattern(w, h, t)).collect();
        let dist: Vec<Picture> = refs.iter().map(blurred).collect();
        let mut full = Vmaf::new(w, h, 4).unwrap();
        for (r, d) in refs.iter().zip(&dist) {
            full.push(r, d).unwrap();
        }
        let full = full.finish().unwrap();
        let motion = ReferenceMotion::compute(&refs).unwrap();
        assert_eq!(motion.len(), 9);
        assert!(
            motion.scores[1..].iter().all(|&m| m > 0.5),
            "{:?}",
            motion.scores
        );
        let mut shared = Vmaf::with_motion(w, h, motion).unwrap();
        assert!(
            shared.push(&refs[0], &dist[0]).is_err(),
            "push needs an index"
        );
        for i in (0..9).step_by(4) {
            shared.push_at(i as u32, &refs[i], &dist[i]).unwrap();
        }
        assert!(
            shared.push_at(4, &refs[4], &dist[4]).is_err(),
            "out of order"
        );
        let shared = shared.finish().unwrap();
        assert_eq!(full.len(), 3);
        assert!(
            full.iter().any(|s| s.1 < 95.0),
            "the blur costs something: {full:?}"
        );
        for (a, b) in full.iter().zip(&shared) {
            assert_eq!(a.0, b.0);
            assert!(
                (a.1 - b.1).abs() < 1e-9,
                "frame {}: {} vs {}",
                a.0,
                a.1,
                b.1
            );
        }
    }
}
