//! A big-endian bit reader that never reads past its slice.

use crate::{MediaError, Result};

pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    pub(crate) fn bit(&mut self) -> Result<bool> {
        Ok(self.bits(1)? == 1)
    }

    /// Reads `n` (at most 32) bits as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32> {
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

    /// AV1 `uvlc()`.
    pub(crate) fn uvlc(&mut self) -> Result<u32> {
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
