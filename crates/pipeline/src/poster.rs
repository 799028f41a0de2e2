//! The poster frame the catalog shows: one picture of the title, a third of the way in,
//! 480 pixels wide, as a JPEG (`poster.jpg` beside the manifests).

use crate::PipelineError;
use reel_media::Picture;
use std::path::Path;

/// Width of the poster, in pixels.
pub const POSTER_WIDTH: u32 = 480;
/// Object key of the poster in a published title.
pub const POSTER_FILE: &str = "poster.jpg";

/// Where in the title the poster is taken, as a fraction of its running time.
pub const POSTER_AT: f64 = 0.3;

/// The index of the poster's frame in a title of `frames` frames.
pub fn poster_frame(frames: u64) -> u64 {
    (frames as f64 * POSTER_AT) as u64
}

/// Decodes the picture at 30% of the title and encodes it as a JPEG. `reel run` takes the
/// picture from its encode's own decode instead ([`poster_from_picture`]); this is for runs
/// that encode nothing.
pub fn poster_jpeg(source: &Path) -> Result<Vec<u8>, PipelineError> {
    let info = reel_encoder::probe(source)?;
    let video = info.require_video()?;
    let (width, height) = poster_size(video);
    let fps = video.frame_rate.as_f64();
    if fps <= 0.0 {
        return Err(PipelineError::Poster(format!(
            "{}: no frame rate",
            source.display()
        )));
    }
    let frame = poster_frame((info.duration * fps).round() as u64);
    let at = ((frame as f64 - 0.5) / fps).max(0.0);
    let mut picture: Option<Picture> = None;
    reel_encoder::decode_pictures(
        source,
        (width, height),
        &[(at, at + 1.0)],
        &mut |_, _, p| {
            picture = Some(p);
            false
        },
    )?;
    let picture = picture.ok_or_else(|| {
        PipelineError::Poster(format!("{}: no picture at {at:.1} s", source.display()))
    })?;
    jpeg(&picture, bt709(video))
        .map_err(|e| PipelineError::Poster(format!("{}: {e}", source.display())))
}

/// The poster from a decoded picture of `video` at its coded size (as the encoder hands it
/// over in [`reel_encoder::Event::Still`]): scaled to the poster's size, as a JPEG.
pub fn poster_from_picture(
    picture: &Picture,
    video: &reel_encoder::VideoStream,
) -> Result<Vec<u8>, String> {
    let (width, height) = poster_size(video);
    let scaled = reel_encoder::resize::PlaneScaler::default().picture(picture, width, height)?;
    jpeg(&scaled, bt709(video))
}

/// POSTER_WIDTH wide, the upright picture's display aspect (square pixels: a phone's portrait
/// video stands), even height.
fn poster_size(video: &reel_encoder::VideoStream) -> (u32, u32) {
    let height = reel_encoder::even(f64::from(POSTER_WIDTH) / video.display_aspect().max(1e-3));
    (POSTER_WIDTH, height.max(2))
}

fn jpeg(picture: &Picture, bt709: bool) -> Result<Vec<u8>, String> {
    let rgb = to_rgb(picture, bt709);
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(
            &rgb,
            picture.width as u16,
            picture.height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| format!("JPEG: {e}"))?;
    Ok(out)
}

/// Whether `video`'s pictures become RGB with BT.709's coefficients (HD: over 576 lines)
/// rather than BT.601's, for the poster and the thumbnails alike.
pub(crate) fn bt709(video: &reel_encoder::VideoStream) -> bool {
    video.height > 576
}

/// Limited-range Y'CbCr 4:2:0 to full-range RGB, BT.709 for HD sources, BT.601 otherwise.
pub(crate) fn to_rgb(p: &Picture, bt709: bool) -> Vec<u8> {
    let (kr, kb) = if bt709 {
        (0.2126, 0.0722)
    } else {
        (0.299, 0.114)
    };
    let kg = 1.0 - kr - kb;
    let (w, h) = (p.width as usize, p.height as usize);
    let cw = w.div_ceil(2);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let luma = (f64::from(p.planes[0][y * w + x]) - 16.0) / 219.0;
            let c = (y / 2) * cw + x / 2;
            let cb = (f64::from(p.planes[1][c]) - 128.0) / 224.0;
            let cr = (f64::from(p.planes[2][c]) - 128.0) / 224.0;
            let r = luma + 2.0 * (1.0 - kr) * cr;
            let b = luma + 2.0 * (1.0 - kb) * cb;
            let g = (luma - kr * r - kb * b) / kg;
            for v in [r, g, b] {
                out.push((v * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_grey_and_primaries_convert() {
        // Mid grey, video levels.
        let grey = Picture::filled(2, 2, 126, 128);
        assert!(to_rgb(&grey, true)
            .iter()
            .all(|&v| (v as i32 - 128).abs() <= 1));
        // Black and white at the range limits.
        assert!(to_rgb(&Picture::filled(2, 2, 16, 128), true)
            .iter()
            .all(|&v| v == 0));
        assert!(to_rgb(&Picture::filled(2, 2, 235, 128), false)
            .iter()
            .all(|&v| v == 255));
        // BT.709 red: Y'=63 Cb=102 Cr=240.
        let mut red = Picture::filled(2, 2, 63, 128);
        red.planes[1] = vec![102];
        red.planes[2] = vec![240];
        let rgb = to_rgb(&red, true);
        assert!(rgb[0] >= 250 && rgb[1] <= 5 && rgb[2] <= 5, "{rgb:?}");
    }
}
