use serde::{Deserialize, Serialize};
use std::fmt;

/// An exact rational number, used for frame rates and aspect ratios (`24000/1001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    /// A rational reduced to lowest terms. A zero denominator is kept as `0/1`.
    pub fn new(num: u32, den: u32) -> Self {
        if den == 0 {
            return Self { num: 0, den: 1 };
        }
        let g = gcd(u64::from(num), u64::from(den)) as u32;
        let g = g.max(1);
        Self {
            num: num / g,
            den: den / g,
        }
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    pub fn is_zero(self) -> bool {
        self.num == 0
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces() {
        assert_eq!(Rational::new(50, 2), Rational { num: 25, den: 1 });
        assert_eq!(Rational::new(24000, 1001).to_string(), "24000/1001");
        assert_eq!(Rational::new(3, 0), Rational { num: 0, den: 1 });
    }
}
