//! SVT-AV1, the AV1 encoder Intel and Netflix built for production encoding, for Reel.
//!
//! [`sys`] is what bindgen makes of the installed `EbSvtAv1Enc.h` at build time (Debian's
//! `libsvtav1enc-dev`, 1.4 or newer); no crate binds the library at Debian 12's version. The
//! rest is a safe encoder for 8-bit 4:2:0 pictures, shaped like the library's own calls:
//! [`Encoder::new`] checks every setting against its limits, [`Encoder::send_picture`] hands
//! over one picture (the library copies it), [`Encoder::receive_packet`] takes out what is
//! ready, and [`Encoder::flush`] ends the stream.
//!
//! ```no_run
//! use reel_svt_av1::{Encoder, Picture, Rate, Settings};
//! let settings = Settings::new(640, 360, (25, 1), 10, Rate::Crf(35), 50);
//! let mut encoder = Encoder::new(&settings).unwrap();
//! let (y, u, v) = (vec![16u8; 640 * 360], vec![128u8; 320 * 180], vec![128u8; 320 * 180]);
//! let picture = Picture { planes: [&y, &u, &v], strides: [640, 320, 320] };
//! encoder.send_picture(&picture, 0).unwrap();
//! encoder.flush().unwrap();
//! while let Some(packet) = encoder.receive_packet().unwrap() {
//!     println!("{} bytes at {}{}", packet.data.len(), packet.pts, if packet.key { " (key)" } else { "" });
//! }
//! ```

use std::ffi::CStr;
use std::ops::RangeInclusive;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

/// The library's declarations, as bindgen generated them from the installed headers.
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all
)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/svt_av1.rs"));
}

/// Presets SVT-AV1 accepts: 0 is the slowest and best, 13 the fastest.
pub const PRESETS: RangeInclusive<u8> = 0..=13;
/// Constant rate factors SVT-AV1 accepts (the AV1 quantizer index divided by four).
pub const CRFS: RangeInclusive<u32> = 1..=63;
/// Target bitrates in kbit/s (the library counts bits per second in 32 bits).
pub const BITRATES_KBPS: RangeInclusive<u32> = 1..=100_000;
/// Picture sizes SVT-AV1 accepts, in pixels, for width and height alike.
pub const SIZES: RangeInclusive<u32> = 64..=16384;

/// Errors of the wrapper and of the library.
#[derive(Debug, thiserror::Error)]
pub enum SvtError {
    /// A setting outside what the library accepts, caught before the library sees it.
    #[error("SVT-AV1 {name} {value} is outside {limits}")]
    Setting {
        name: &'static str,
        value: i64,
        limits: String,
    },
    /// A picture that does not match the encoder's size.
    #[error("SVT-AV1 picture: {0}")]
    Picture(String),
    /// A library call that failed.
    #[error("SVT-AV1 {call} failed: {reason} (error 0x{code:08x})")]
    Library {
        call: &'static str,
        code: u32,
        reason: &'static str,
    },
    /// A call made out of order (a picture after the end of the stream).
    #[error("SVT-AV1: {0}")]
    Usage(&'static str),
}

/// How the encoder spends bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Constant rate factor, [`CRFS`].
    Crf(u32),
    /// Variable bitrate around a target in kbit/s, [`BITRATES_KBPS`].
    Bitrate { kbps: u32 },
}

/// Colour description code points (ISO/IEC 23091-2) to write in the sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColorDescription {
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
}

/// Where 4:2:0 chroma samples sit against the luma grid (AV1 `chroma_sample_position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChromaPosition {
    #[default]
    Unknown,
    /// Horizontally with the first luma sample, between two rows (MPEG-2, H.264's default).
    Vertical,
    /// With the first luma sample in both directions.
    Colocated,
}

/// Everything that decides an encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub width: u32,
    pub height: u32,
    /// Frames per second as numerator and denominator.
    pub frame_rate: (u32, u32),
    /// [`PRESETS`]; higher is faster.
    pub preset: u8,
    pub rate: Rate,
    /// A key frame every this many frames, counted from the first, and nowhere else (scene
    /// change detection is off); every GOP is closed.
    pub keyframe_interval: u32,
    pub color: Option<ColorDescription>,
    /// Full-range samples (0-255) rather than studio range.
    pub full_range: bool,
    pub chroma_position: ChromaPosition,
    /// Logical processors the library's threads may use; 0 lets it use all.
    pub threads: u32,
}

impl Settings {
    /// Settings with studio range, no colour description and every processor.
    pub fn new(
        width: u32,
        height: u32,
        frame_rate: (u32, u32),
        preset: u8,
        rate: Rate,
        keyframe_interval: u32,
    ) -> Self {
        Settings {
            width,
            height,
            frame_rate,
            preset,
            rate,
            keyframe_interval,
            color: None,
            full_range: false,
            chroma_position: ChromaPosition::Unknown,
            threads: 0,
        }
    }

    /// Checks every setting against the library's limits, naming the first one outside them.
    pub fn validate(&self) -> Result<(), SvtError> {
        let outside = |name, value: i64, limits: String| SvtError::Setting {
            name,
            value,
            limits,
        };
        let range = |r: &RangeInclusive<u32>| format!("{}-{}", r.start(), r.end());
        if !SIZES.contains(&self.width) {
            return Err(outside("width", self.width.into(), range(&SIZES)));
        }
        if !SIZES.contains(&self.height) {
            return Err(outside("height", self.height.into(), range(&SIZES)));
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Err(SvtError::Picture(format!(
                "{}x{} is not even in both directions (4:2:0)",
                self.width, self.height
            )));
        }
        if !PRESETS.contains(&self.preset) {
            return Err(outside(
                "preset",
                self.preset.into(),
                format!("{}-{}", PRESETS.start(), PRESETS.end()),
            ));
        }
        match self.rate {
            Rate::Crf(crf) if !CRFS.contains(&crf) => {
                return Err(outside("crf", crf.into(), range(&CRFS)))
            }
            Rate::Bitrate { kbps } if !BITRATES_KBPS.contains(&kbps) => {
                return Err(outside(
                    "bitrate (kbit/s)",
                    kbps.into(),
                    range(&BITRATES_KBPS),
                ))
            }
            _ => {}
        }
        let (num, den) = self.frame_rate;
        if num == 0 || den == 0 || num / den > 240 {
            return Err(outside(
                "frame rate",
                i64::from(num) / i64::from(den.max(1)),
                "1-240 frames per second".into(),
            ));
        }
        if self.keyframe_interval == 0 || self.keyframe_interval > (1 << 30) {
            return Err(outside(
                "key frame interval (frames)",
                self.keyframe_interval.into(),
                "1-2^30".into(),
            ));
        }
        Ok(())
    }

    /// The library's configuration: its defaults, then these settings.
    fn apply(&self, config: &mut sys::EbSvtAv1EncConfiguration) {
        config.enc_mode = self.preset as i8;
        config.source_width = self.width;
        config.source_height = self.height;
        config.frame_rate_numerator = self.frame_rate.0;
        config.frame_rate_denominator = self.frame_rate.1;
        config.encoder_bit_depth = 8;
        config.encoder_color_format = sys::EB_YUV420;
        // Key frames on the cadence only: every GOP closed, no scene-cut key frames. The
        // library counts the frames between key frames.
        config.intra_period_length = self.keyframe_interval as i32 - 1;
        config.intra_refresh_type = sys::SVT_AV1_KF_REFRESH;
        config.scene_change_detection = 0;
        match self.rate {
            Rate::Crf(crf) => {
                config.rate_control_mode = sys::SVT_AV1_RC_MODE_CQP_OR_CRF;
                config.qp = crf;
            }
            Rate::Bitrate { kbps } => {
                config.rate_control_mode = sys::SVT_AV1_RC_MODE_VBR;
                config.target_bit_rate = kbps * 1000;
            }
        }
        if let Some(c) = self.color {
            config.color_primaries = c.primaries.into();
            config.transfer_characteristics = c.transfer.into();
            config.matrix_coefficients = c.matrix.into();
        }
        config.color_range = u32::from(self.full_range) as _;
        config.chroma_sample_position = match self.chroma_position {
            ChromaPosition::Unknown => sys::EB_CSP_UNKNOWN,
            ChromaPosition::Vertical => sys::EB_CSP_VERTICAL,
            ChromaPosition::Colocated => sys::EB_CSP_COLOCATED,
        };
        config.logical_processors = self.threads;
    }
}

/// One picture in 8-bit 4:2:0: luma, then the two chroma planes, each with its row stride in
/// bytes.
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

/// One temporal unit as it leaves the encoder, in presentation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// OBUs, starting with a temporal delimiter; a key frame's carry the sequence header.
    pub data: Vec<u8>,
    /// The `pts` its picture was sent with.
    pub pts: i64,
    /// A key frame: decoding can start here.
    pub key: bool,
}

/// Held while an encoder is created (see [`Encoder::new`]).
static INIT: Mutex<()> = Mutex::new(());

/// An SVT-AV1 encoder.
pub struct Encoder {
    handle: NonNull<sys::EbComponentType>,
    /// `svt_av1_enc_init` succeeded, so `svt_av1_enc_deinit` is due.
    initialised: bool,
    width: u32,
    height: u32,
    /// Pictures taken by the library. SVT-AV1 1.4 never ends a stream without one (its
    /// deinit waits forever): [`flush`](Self::flush) then sends a grey picture whose packet
    /// nobody sees.
    pictures_sent: u64,
    filler_only: bool,
    end_sent: bool,
    end_received: bool,
}

// SAFETY: the handle is not tied to the thread that made it; the library synchronises its own
// threads, and `&mut self` on every call keeps calls on one handle from running at once.
unsafe impl Send for Encoder {}

impl Encoder {
    /// Checks `settings`, then creates and initialises an encoder with them.
    pub fn new(settings: &Settings) -> Result<Encoder, SvtError> {
        settings.validate()?;
        // The library sets up its global table of CPU-specific functions in every init and
        // complains, line by line, when two inits on different threads race over it.
        let _one_at_a_time = INIT.lock().unwrap_or_else(|e| e.into_inner());
        let mut handle: *mut sys::EbComponentType = ptr::null_mut();
        let mut config = sys::EbSvtAv1EncConfiguration::default();
        // SAFETY: both pointers are valid for the call; the library fills in its defaults.
        let code =
            unsafe { sys::svt_av1_enc_init_handle(&mut handle, ptr::null_mut(), &mut config) };
        check("init_handle", code)?;
        let handle = NonNull::new(handle).ok_or(SvtError::Library {
            call: "init_handle",
            code: 0,
            reason: "no handle returned",
        })?;
        let mut encoder = Encoder {
            handle,
            initialised: false,
            width: settings.width,
            height: settings.height,
            pictures_sent: 0,
            filler_only: false,
            end_sent: false,
            end_received: false,
        };
        settings.apply(&mut config);
        // SAFETY: a live handle and a configuration the library copies.
        check("set_parameter", unsafe {
            sys::svt_av1_enc_set_parameter(encoder.handle.as_ptr(), &mut config)
        })?;
        // SAFETY: a live, configured handle.
        check("init", unsafe {
            sys::svt_av1_enc_init(encoder.handle.as_ptr())
        })?;
        encoder.initialised = true;
        Ok(encoder)
    }

    /// Hands one picture to the encoder, which copies it; `pts` comes back on its packet.
    /// May wait while the library's input buffers are full: take out packets between calls.
    pub fn send_picture(&mut self, picture: &Picture<'_>, pts: i64) -> Result<(), SvtError> {
        if self.end_sent {
            return Err(SvtError::Usage("a picture after the end of the stream"));
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let sizes = [(w, h), (w / 2, h / 2), (w / 2, h / 2)];
        let mut filled = 0usize;
        for (p, (plane, &(pw, ph))) in picture.planes.iter().zip(&sizes).enumerate() {
            let stride = picture.strides[p];
            let needed = stride * (ph - 1) + pw;
            if stride < pw || plane.len() < needed {
                return Err(SvtError::Picture(format!(
                    "plane {p}: {} bytes at stride {stride}, where a {pw}x{ph} plane needs a \
                     stride of at least {pw} and {needed} bytes",
                    plane.len()
                )));
            }
            filled += plane.len();
        }
        let mut io = sys::EbSvtIOFormat {
            luma: picture.planes[0].as_ptr().cast_mut(),
            cb: picture.planes[1].as_ptr().cast_mut(),
            cr: picture.planes[2].as_ptr().cast_mut(),
            y_stride: picture.strides[0] as u32,
            cb_stride: picture.strides[1] as u32,
            cr_stride: picture.strides[2] as u32,
            width: self.width,
            height: self.height,
            color_fmt: sys::EB_YUV420,
            bit_depth: sys::EB_EIGHT_BIT,
            ..Default::default()
        };
        let mut header = sys::EbBufferHeaderType {
            size: std::mem::size_of::<sys::EbBufferHeaderType>() as u32,
            p_buffer: (&mut io as *mut sys::EbSvtIOFormat).cast(),
            n_filled_len: u32::try_from(filled).unwrap_or(u32::MAX),
            pts,
            pic_type: sys::EB_AV1_INVALID_PICTURE,
            ..Default::default()
        };
        // SAFETY: the header and the planes it points to outlive the call, and the library
        // copies the picture before returning; the sizes were checked above. It only reads
        // through the plane pointers.
        check("send_picture", unsafe {
            sys::svt_av1_enc_send_picture(self.handle.as_ptr(), &mut header)
        })?;
        self.pictures_sent += 1;
        Ok(())
    }

    /// Ends the stream: the encoder codes what it holds.
    pub fn flush(&mut self) -> Result<(), SvtError> {
        if self.end_sent {
            return Ok(());
        }
        if self.pictures_sent == 0 {
            let (w, h) = (self.width as usize, self.height as usize);
            let (luma, chroma) = (vec![128u8; w * h], vec![128u8; w / 2 * (h / 2)]);
            let grey = Picture {
                planes: [&luma, &chroma, &chroma],
                strides: [w, w / 2, w / 2],
            };
            self.send_picture(&grey, 0)?;
            self.filler_only = true;
        }
        let mut header = sys::EbBufferHeaderType {
            size: std::mem::size_of::<sys::EbBufferHeaderType>() as u32,
            flags: sys::EB_BUFFERFLAG_EOS,
            pic_type: sys::EB_AV1_INVALID_PICTURE,
            ..Default::default()
        };
        // SAFETY: a header without a picture, which the library reads during the call.
        check("send_picture (end of stream)", unsafe {
            sys::svt_av1_enc_send_picture(self.handle.as_ptr(), &mut header)
        })?;
        self.end_sent = true;
        Ok(())
    }

    /// The next packet. Before [`flush`](Self::flush), `None` means none is ready yet; after
    /// it, this waits for the next one and `None` means the stream is complete.
    pub fn receive_packet(&mut self) -> Result<Option<Packet>, SvtError> {
        loop {
            if self.end_received {
                return Ok(None);
            }
            let mut out: *mut sys::EbBufferHeaderType = ptr::null_mut();
            // SAFETY: a live handle; `out` receives a buffer we release below.
            let code = unsafe {
                sys::svt_av1_enc_get_packet(self.handle.as_ptr(), &mut out, u8::from(self.end_sent))
            };
            if code == sys::EB_NoErrorEmptyQueue {
                return Ok(None);
            }
            check("get_packet", code)?;
            if out.is_null() {
                return Err(SvtError::Library {
                    call: "get_packet",
                    code: 0,
                    reason: "no packet returned",
                });
            }
            // SAFETY: the library returned a valid buffer header; it stays ours until released.
            let header = unsafe { &*out };
            let flags = header.flags;
            let packet = (header.n_filled_len > 0 && !header.p_buffer.is_null()).then(|| {
                // SAFETY: `p_buffer` holds `n_filled_len` bytes of coded data.
                let data = unsafe {
                    std::slice::from_raw_parts(header.p_buffer, header.n_filled_len as usize)
                };
                Packet {
                    data: data.to_vec(),
                    pts: header.pts,
                    key: header.pic_type == sys::EB_AV1_KEY_PICTURE,
                }
            });
            // SAFETY: a buffer from get_packet, released once.
            unsafe { sys::svt_av1_enc_release_out_buffer(&mut out) };
            if flags & sys::EB_BUFFERFLAG_ERROR_MASK != 0 {
                return Err(SvtError::Library {
                    call: "get_packet",
                    code: flags,
                    reason: "the encoder reported an error on a packet",
                });
            }
            if flags & sys::EB_BUFFERFLAG_EOS != 0 {
                self.end_received = true;
            }
            if let Some(packet) = packet.filter(|_| !self.filler_only) {
                return Ok(Some(packet));
            }
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // The library hangs in deinit unless the stream has ended: end it and take out what
        // it still codes (at most its look-ahead), even when the caller stopped early.
        if self.initialised && !self.end_received && self.flush().is_ok() {
            while let Ok(Some(_)) = self.receive_packet() {}
        }
        // SAFETY: the handle is live; deinit only after a successful init, as the library
        // expects, and the handle is not used again.
        unsafe {
            if self.initialised {
                sys::svt_av1_enc_deinit(self.handle.as_ptr());
            }
            sys::svt_av1_enc_deinit_handle(self.handle.as_ptr());
        }
    }
}

/// The library's version, e.g. `v1.4.1`.
pub fn version() -> String {
    // SAFETY: the library returns a static, NUL-terminated string.
    let text = unsafe { sys::svt_av1_get_version() };
    if text.is_null() {
        return "unknown".into();
    }
    // SAFETY: checked non-null above; static for the life of the process.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

fn check(call: &'static str, code: sys::EbErrorType) -> Result<(), SvtError> {
    if code == sys::EB_ErrorNone {
        return Ok(());
    }
    Err(SvtError::Library {
        call,
        code: code as u32,
        reason: reason(code),
    })
}

/// What an error code means, in the header's words.
fn reason(code: sys::EbErrorType) -> &'static str {
    match code {
        sys::EB_ErrorInsufficientResources => "insufficient resources (memory or threads)",
        sys::EB_ErrorBadParameter => "a setting the library refused",
        sys::EB_ErrorInvalidComponent => "invalid encoder handle",
        sys::EB_ErrorUndefined => "undefined error",
        sys::EB_ErrorCreateMutexFailed | sys::EB_ErrorMutexUnresponsive => "a mutex failed",
        sys::EB_ErrorSemaphoreUnresponsive => "a semaphore failed",
        sys::EB_NoErrorFifoShutdown => "the encoder is shutting down",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moving gradient, so that frames differ.
    fn frame(width: usize, height: usize, n: usize) -> [Vec<u8>; 3] {
        let y = (0..width * height)
            .map(|i| ((i % width + i / width + 3 * n) % 220 + 16) as u8)
            .collect();
        let c = vec![128u8; width / 2 * height / 2];
        [y, c.clone(), c]
    }

    fn encode(settings: &Settings, frames: usize) -> Vec<Packet> {
        let mut encoder = Encoder::new(settings).unwrap();
        let (w, h) = (settings.width as usize, settings.height as usize);
        let mut packets = Vec::new();
        for n in 0..frames {
            let planes = frame(w, h, n);
            let picture = Picture {
                planes: [&planes[0], &planes[1], &planes[2]],
                strides: [w, w / 2, w / 2],
            };
            encoder.send_picture(&picture, n as i64 * 10).unwrap();
            while let Some(p) = encoder.receive_packet().unwrap() {
                packets.push(p);
            }
        }
        encoder.flush().unwrap();
        while let Some(p) = encoder.receive_packet().unwrap() {
            packets.push(p);
        }
        packets
    }

    #[test]
    fn key_frames_fall_on_the_cadence_and_nowhere_else() {
        // 25 frames between key frames: not a multiple of any mini-GOP size.
        let settings = Settings::new(192, 108, (25, 1), 12, Rate::Crf(40), 25);
        let packets = encode(&settings, 60);
        assert_eq!(packets.len(), 60, "one packet per picture");
        let pts: Vec<i64> = packets.iter().map(|p| p.pts).collect();
        assert_eq!(
            pts,
            (0..60).map(|n| n * 10).collect::<Vec<_>>(),
            "presentation order"
        );
        let keys: Vec<i64> = packets
            .iter()
            .filter(|p| p.key)
            .map(|p| p.pts / 10)
            .collect();
        assert_eq!(keys, vec![0, 25, 50]);
    }

    #[test]
    fn settings_outside_the_limits_are_named() {
        let mut settings = Settings::new(192, 108, (25, 1), 14, Rate::Crf(40), 25);
        let e = Encoder::new(&settings).err().unwrap().to_string();
        assert_eq!(e, "SVT-AV1 preset 14 is outside 0-13");
        settings.preset = 10;
        settings.rate = Rate::Crf(64);
        let e = Encoder::new(&settings).err().unwrap().to_string();
        assert_eq!(e, "SVT-AV1 crf 64 is outside 1-63");
        settings.rate = Rate::Crf(30);
        settings.height = 32;
        let e = Encoder::new(&settings).err().unwrap().to_string();
        assert_eq!(e, "SVT-AV1 height 32 is outside 64-16384");
    }

    #[test]
    fn a_short_plane_is_refused_before_the_library_reads_it() {
        let settings = Settings::new(192, 108, (25, 1), 12, Rate::Crf(40), 25);
        let mut encoder = Encoder::new(&settings).unwrap();
        let planes = frame(192, 108, 0);
        let picture = Picture {
            planes: [&planes[0][..1000], &planes[1], &planes[2]],
            strides: [192, 96, 96],
        };
        let e = encoder.send_picture(&picture, 0).unwrap_err().to_string();
        assert!(e.contains("plane 0: 1000 bytes"), "{e}");
        // Ending a stream that took no picture gives no packet (and does not hang).
        encoder.flush().unwrap();
        assert_eq!(encoder.receive_packet().unwrap(), None);
    }

    #[test]
    fn an_encoder_dropped_in_the_middle_of_a_stream_shuts_down() {
        let settings = Settings::new(192, 108, (25, 1), 12, Rate::Crf(40), 25);
        let mut encoder = Encoder::new(&settings).unwrap();
        let planes = frame(192, 108, 0);
        let picture = Picture {
            planes: [&planes[0], &planes[1], &planes[2]],
            strides: [192, 96, 96],
        };
        for n in 0..5 {
            encoder.send_picture(&picture, n).unwrap();
        }
        drop(encoder);
        // Dropped before any picture, too.
        drop(Encoder::new(&settings).unwrap());
    }

    #[test]
    fn the_version_is_the_libraries() {
        assert!(version().contains('.'), "{}", version());
    }
}
