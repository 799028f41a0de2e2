//! A big-endian bit reader that never reads past its slice, with the variable-length codes of
//! H.264 (Exp-Golomb) and AV1 (`uvlc`, `leb128`, `su`, `ns`, `le`).
//!
//! ```
//! let mut r = reel_media::bits::BitReader::new(&[0b1010_0000], "example");
//! assert!(r.bit().unwrap());
//! assert_eq!(r.ue().unwrap(), 1); // "010"
//! assert_eq!(r.position(), 4);
//! ```

use crate::{MediaError, Result};

pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    pub fn bit(&mut self) -> Result<bool> {
        Ok(self.bits(1)? == 1)
    }

    /// Reads `n` (at most 32) bits as an unsigned number.
    pub fn bits(&mut self, n: u32) -> Result<u32> {
        debug_assert!(n <= 32);
        let end = self.pos + n as usize;
        if end > self.data.len() * 8 {
            return Err(MediaError::Truncated {
                what: self.what,
                needed: end.div_ceil(8),
                had: self.data.len(),
            });
        }
        let mut v: u64 = 0;
        for i in self.pos..end {
            let byte = self.data[i / 8];
            v = (v << 1) | u64::from((byte >> (7 - (i % 8))) & 1);
        }
        self.pos = end;
        Ok(v as u32)
    }

    /// Bits consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The whole byte at offset `at` of the underlying buffer, whatever the bit position.
    pub fn byte_at(&self, at: usize) -> Result<u8> {
        self.data.get(at).copied().ok_or(MediaError::Truncated {
            what: self.what,
            needed: at + 1,
            had: self.data.len(),
        })
    }

    /// Skips `n` bits (any number).
    pub fn skip(&mut self, n: usize) -> Result<()> {
        let end = self.pos + n;
        if end > self.data.len() * 8 {
            return Err(MediaError::Truncated {
                what: self.what,
                needed: end.div_ceil(8),
                had: self.data.len(),
            });
        }
        self.pos = end;
        Ok(())
    }

    /// Moves to the next byte boundary.
    pub fn byte_align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    fn invalid(&self, problem: &str) -> MediaError {
        MediaError::Invalid {
            what: self.what,
            problem: problem.into(),
        }
    }

    /// H.264 `ue(v)`: unsigned Exp-Golomb.
    pub fn ue(&mut self) -> Result<u32> {
        let mut leading = 0;
        while !self.bit()? {
            leading += 1;
            if leading > 31 {
                return Err(self.invalid("Exp-Golomb code longer than 32 bits"));
            }
        }
        if leading == 0 {
            return Ok(0);
        }
        let v = u64::from(self.bits(leading)?) + (1u64 << leading) - 1;
        u32::try_from(v).map_err(|_| self.invalid("Exp-Golomb value above 32 bits"))
    }

    /// H.264 `se(v)`: signed Exp-Golomb.
    pub fn se(&mut self) -> Result<i32> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }

    /// AV1 `su(n)`: an `n`-bit two's complement number.
    pub fn su(&mut self, n: u32) -> Result<i32> {
        let v = i64::from(self.bits(n)?);
        let sign = 1i64 << (n - 1);
        Ok(if v & sign != 0 { v - 2 * sign } else { v } as i32)
    }

    /// AV1 `ns(n)`: a non-symmetric unsigned number below `n`.
    pub fn ns(&mut self, n: u32) -> Result<u32> {
        if n <= 1 {
            return Ok(0);
        }
        let w = 32 - n.leading_zeros(); // FloorLog2(n) + 1
        let m = (1u32 << w) - n;
        let v = self.bits(w - 1)?;
        if v < m {
            return Ok(v);
        }
        let extra = self.bits(1)?;
        Ok((v << 1) - m + extra)
    }

    /// AV1 `le(n)`: an `n`-byte little-endian number.
    pub fn le(&mut self, n: u32) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.bits(8)?) << (8 * i);
        }
        Ok(v)
    }

    /// AV1 `uvlc()`.
    pub fn uvlc(&mut self) -> Result<u32> {
        let mut leading = 0;
        while !self.bit()? {
            leading += 1;
            if leading >= 32 {
                return Err(MediaError::Invalid {
                    what: self.what,
                    problem: "uvlc longer than 32 bits".into(),
                });
            }
        }
        if leading == 0 {
            return Ok(0);
        }
        let v = self.bits(leading)?;
        Ok(v + ((1u32 << leading) - 1))
    }
}

/// Writes syntax elements bit by bit, so that parser tests can spell a header in the order
/// of the specification's syntax tables.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct BitWriter {
    bits: Vec<bool>,
}

#[cfg(test)]
impl BitWriter {
    /// `f(n)` / `u(n)`: `value` in `n` bits, most significant first.
    pub(crate) fn u(&mut self, value: u32, n: u32) -> &mut Self {
        for i in (0..n).rev() {
            self.bits.push((value >> i) & 1 == 1);
        }
        self
    }

    pub(crate) fn flag(&mut self, value: bool) -> &mut Self {
        self.u(u32::from(value), 1)
    }

    /// H.264 `ue(v)`.
    pub(crate) fn ue(&mut self, value: u32) -> &mut Self {
        let v = u64::from(value) + 1;
        let len = 64 - v.leading_zeros();
        self.u(0, len - 1);
        for i in (0..len).rev() {
            self.bits.push((v >> i) & 1 == 1);
        }
        self
    }

    /// H.264 `se(v)`.
    pub(crate) fn se(&mut self, value: i32) -> &mut Self {
        let k = if value > 0 { 2 * value - 1 } else { -2 * value };
        self.ue(k as u32)
    }

    /// AV1 `su(n)`.
    pub(crate) fn su(&mut self, value: i32, n: u32) -> &mut Self {
        self.u((value as u32) & ((1u32 << n) - 1), n)
    }

    /// Bits written so far.
    pub(crate) fn len(&self) -> usize {
        self.bits.len()
    }

    /// The bytes, the last one padded with zero bits.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.bits
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &bit)| b | (u8::from(bit) << (7 - i)))
            })
            .collect()
    }
}
