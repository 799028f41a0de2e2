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
        let mut v = Vmaf {
            ctx,
            model: ptr::null_mut(),
            width,
            height,
            frames: 0,
            subsample,
        };
        let name = CString::new("vmaf").unwrap();
        let version = CString::new("vmaf_v0.6.1").unwrap();
        let mut mcfg = ffi::VmafModelConfig {
            name: name.as_ptr(),
            flags: 0,
        };
        // SAFETY: the strings outlive the calls; libvmaf copies what it keeps.
        check("model load", unsafe {
            ffi::vmaf_model_load(&mut v.model, &mut mcfg, version.as_ptr())
        })?;
        check("feature setup", unsafe {
            ffi::vmaf_use_features_from_model(v.ctx, v.model)
        })?;
        Ok(v)
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
            ffi::vmaf_read_pictures(self.ctx, &mut r, &mut d, self.frames)
        })?;
        self.frames += 1;
        Ok(())
    }

    /// Flushes and returns `(frame index, score)` of every scored frame, in order.
    pub fn finish(self) -> Result<Vec<(u32, f64)>, LadderError> {
        if self.frames == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: null pictures flush the context.
        check("flush", unsafe {
            ffi::vmaf_read_pictures(self.ctx, ptr::null_mut(), ptr::null_mut(), 0)
        })?;
        (0..self.frames)
            .step_by(self.subsample as usize)
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
