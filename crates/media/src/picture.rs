//! Raw 8-bit 4:2:0 pictures, as decoders hand them out and quality metrics read them.

/// One 8-bit I420 (planar Y, U, V; chroma halved both ways) picture with tightly packed rows.
///
/// ```
/// use reel_media::Picture;
/// let p = Picture::filled(4, 2, 16, 128);
/// assert_eq!(p.luma().len(), 8);
/// assert_eq!(p.chroma_size(), (2, 1));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// Y, then U, then V; `Y` is `width * height` bytes, each chroma plane
    /// `ceil(width/2) * ceil(height/2)`.
    pub planes: [Vec<u8>; 3],
}

impl Picture {
    /// A picture of one luma and one chroma value.
    pub fn filled(width: u32, height: u32, y: u8, uv: u8) -> Picture {
        let (cw, ch) = chroma_size(width, height);
        Picture {
            width,
            height,
            planes: [
                vec![y; (width * height) as usize],
                vec![uv; (cw * ch) as usize],
                vec![uv; (cw * ch) as usize],
            ],
        }
    }

    /// The luma plane.
    pub fn luma(&self) -> &[u8] {
        &self.planes[0]
    }

    /// Width and height of each chroma plane.
    pub fn chroma_size(&self) -> (u32, u32) {
        chroma_size(self.width, self.height)
    }

    /// Width and height of plane `i` (0 = Y).
    pub fn plane_size(&self, i: usize) -> (u32, u32) {
        if i == 0 {
            (self.width, self.height)
        } else {
            self.chroma_size()
        }
    }
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Picture({}x{})", self.width, self.height)
    }
}

fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}
