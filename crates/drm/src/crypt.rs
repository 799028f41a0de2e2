//! Sample encryption per ISO/IEC 23001-7 (Common Encryption, 3rd edition): `cenc` (AES-128
//! CTR, per-sample IVs) and `cbcs` (AES-128 CBC with a crypt:skip pattern and a constant IV).

use crate::key::{random, Key, KeyId};
use crate::subsample::SubsampleMap;
use crate::{DrmError, Result};
use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes128;
use reel_media::{CodecConfig, TrackKind};

pub use reel_media::Scheme;

/// One entry of a sample's subsample map: clear bytes, then protected bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsample {
    pub clear: u16,
    pub protected: u32,
}

/// What a reader needs to decrypt one sample (its `senc` entry): the per-sample IV (empty with
/// a constant IV) and the subsamples (empty for full-sample encryption).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleEncryption {
    pub iv: Vec<u8>,
    pub subsamples: Vec<Subsample>,
}

impl SampleEncryption {
    /// Size of this sample's auxiliary information in `senc` (what `saiz` lists).
    pub fn aux_size(&self) -> usize {
        self.iv.len()
            + if self.subsamples.is_empty() {
                0
            } else {
                2 + 6 * self.subsamples.len()
            }
    }
}

/// The per-track constants of the `tenc` box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackEncryption {
    pub scheme: Scheme,
    pub kid: KeyId,
    /// Blocks encrypted and skipped in each pattern (0:0 = every block).
    pub crypt_byte_block: u8,
    pub skip_byte_block: u8,
    /// 8 for `cenc`, 0 for `cbcs` (constant IV).
    pub per_sample_iv_size: u8,
    /// The constant IV of `cbcs` (not secret: it is written in `tenc`).
    pub constant_iv: Option<[u8; 16]>,
}

/// Encrypts the samples of one track in place.
///
/// ```
/// use reel_drm::{Key, Scheme, TrackEncryptor};
/// use reel_media::{AudioSpecificConfig, CodecConfig, TrackKind};
/// let key = Key::parse("00000000000000000000000000000001:00112233445566778899aabbccddeeff").unwrap();
/// let config = CodecConfig::Aac(AudioSpecificConfig::new(2, 48_000, 2).unwrap());
/// let mut enc = TrackEncryptor::new(Scheme::Cenc, &key, &config, TrackKind::Audio).unwrap();
/// let mut sample = vec![7u8; 100];
/// let aux = enc.encrypt(&mut sample).unwrap();
/// assert_eq!(aux.iv.len(), 8);
/// assert!(aux.subsamples.is_empty());
/// assert_ne!(sample, vec![7u8; 100]);
/// ```
pub struct TrackEncryptor {
    /// The expanded key (zeroed on drop by the `aes` crate's `zeroize` feature); CTR and CBC
    /// modes start from a clone of it instead of expanding the key again for every sample.
    cipher: Aes128,
    info: TrackEncryption,
    map: SubsampleMap,
    /// The next per-sample IV (`cenc`): its high 8 bytes count up by one a sample; with
    /// 16-byte IVs the low 8 bytes (where the block counter runs) are a fixed random start.
    next_iv: u64,
    iv_low: u64,
}

impl TrackEncryptor {
    /// An encryptor with a random starting IV (`cenc`) or random constant IV (`cbcs`).
    pub fn new(scheme: Scheme, key: &Key, config: &CodecConfig, kind: TrackKind) -> Result<Self> {
        let mut iv = [0u8; 16];
        random(&mut iv)?;
        Self::with_iv(scheme, key, config, kind, iv)
    }

    /// An encryptor with a chosen IV: the first 8 bytes start the `cenc` per-sample IVs; all 16
    /// are the `cbcs` constant IV. For known-answer tests and reproducible output.
    pub fn with_iv(
        scheme: Scheme,
        key: &Key,
        config: &CodecConfig,
        kind: TrackKind,
        iv: [u8; 16],
    ) -> Result<Self> {
        let video = kind == TrackKind::Video;
        let map = SubsampleMap::new(config, scheme)?;
        let (crypt, skip) = match (scheme, video) {
            (Scheme::Cbcs, true) => (1, 9),
            _ => (0, 0),
        };
        let info = TrackEncryption {
            scheme,
            kid: key.kid,
            crypt_byte_block: crypt,
            skip_byte_block: skip,
            per_sample_iv_size: if scheme == Scheme::Cenc { 8 } else { 0 },
            constant_iv: (scheme == Scheme::Cbcs).then_some(iv),
        };
        Ok(Self {
            cipher: Aes128::new(key.key.expose().into()),
            info,
            map,
            next_iv: u64::from_be_bytes(iv[..8].try_into().expect("8 bytes")),
            iv_low: u64::from_be_bytes(iv[8..].try_into().expect("8 bytes")),
        })
    }

    /// Per-sample IV size for `cenc`: 8 (the default) or 16 bytes. Each sample's counter
    /// blocks stay apart from every other sample's either way: samples differ in the high
    /// 8 bytes, and the block counter runs in the low 8.
    ///
    /// ```
    /// use reel_drm::{Key, Scheme, TrackEncryptor};
    /// use reel_media::{AudioSpecificConfig, CodecConfig, TrackKind};
    /// let key = Key::parse("00000000000000000000000000000001:00112233445566778899aabbccddeeff").unwrap();
    /// let config = CodecConfig::Aac(AudioSpecificConfig::new(2, 48_000, 2).unwrap());
    /// let mut enc = TrackEncryptor::new(Scheme::Cenc, &key, &config, TrackKind::Audio).unwrap();
    /// enc.set_iv_size(16).unwrap();
    /// assert_eq!(enc.encrypt(&mut [0u8; 40]).unwrap().iv.len(), 16);
    /// assert!(enc.set_iv_size(12).is_err());
    /// ```
    pub fn set_iv_size(&mut self, size: u8) -> Result<()> {
        match (self.info.scheme, size) {
            (Scheme::Cenc, 8 | 16) => {
                self.info.per_sample_iv_size = size;
                Ok(())
            }
            (Scheme::Cbcs, _) => Err(DrmError::Unsupported {
                problem: "cbcs uses a constant IV, not per-sample IVs".into(),
            }),
            _ => Err(DrmError::Unsupported {
                problem: format!("per-sample IV size {size} (cenc allows 8 or 16)"),
            }),
        }
    }

    pub fn info(&self) -> &TrackEncryption {
        &self.info
    }

    /// Encrypts one sample in place and returns its `senc` entry.
    pub fn encrypt(&mut self, sample: &mut [u8]) -> Result<SampleEncryption> {
        let aux = self.describe(sample)?;
        self.apply(sample, &aux, &mut Vec::new());
        Ok(aux)
    }

    /// Encrypts consecutive samples (decode order) in place. On error, returns the index of
    /// the sample that failed. (Spreading the AES work over both cores was measured: no gain,
    /// the packager is bound by reading and writing the file, so this stays sequential.)
    pub fn encrypt_all(
        &mut self,
        samples: &mut [&mut [u8]],
    ) -> std::result::Result<Vec<SampleEncryption>, (usize, DrmError)> {
        let mut aux = Vec::with_capacity(samples.len());
        let mut scratch = Vec::new();
        for (i, s) in samples.iter_mut().enumerate() {
            let a = self.describe(s).map_err(|e| (i, e))?;
            self.apply(s, &a, &mut scratch);
            aux.push(a);
        }
        Ok(aux)
    }

    /// The `senc` entry of the next sample: its subsamples and (`cenc`) its IV.
    fn describe(&mut self, sample: &[u8]) -> Result<SampleEncryption> {
        let subsamples = self.map.subsamples(sample)?;
        let iv = match self.info.scheme {
            Scheme::Cenc => {
                let iv = self.next_iv;
                self.next_iv = self.next_iv.wrapping_add(1);
                let mut bytes = iv.to_be_bytes().to_vec();
                if self.info.per_sample_iv_size == 16 {
                    bytes.extend_from_slice(&self.iv_low.to_be_bytes());
                }
                bytes
            }
            Scheme::Cbcs => Vec::new(),
        };
        Ok(SampleEncryption { iv, subsamples })
    }

    /// Encrypts the protected ranges `aux` describes.
    fn apply(&self, sample: &mut [u8], aux: &SampleEncryption, scratch: &mut Vec<aes::Block>) {
        match self.info.scheme {
            Scheme::Cenc => {
                let mut counter = [0u8; 16];
                counter[..aux.iv.len()].copy_from_slice(&aux.iv);
                let mut ctr = ctr::Ctr64BE::<Aes128>::from_core(ctr::CtrCore::inner_iv_init(
                    self.cipher.clone(),
                    &counter.into(),
                ));
                for_each_protected(sample, &aux.subsamples, |range| ctr.apply_keystream(range));
            }
            Scheme::Cbcs => {
                let iv = self.info.constant_iv.expect("cbcs has a constant IV");
                let (crypt, skip) = (
                    usize::from(self.info.crypt_byte_block),
                    usize::from(self.info.skip_byte_block),
                );
                // The CBC chain restarts from the constant IV in every subsample.
                for_each_protected(sample, &aux.subsamples, |range| {
                    cbc_pattern(&self.cipher, &iv, crypt, skip, range, scratch)
                });
            }
        }
    }
}

/// Calls `f` on each protected range of `sample`: the whole sample when there are no
/// subsamples.
fn for_each_protected(sample: &mut [u8], subsamples: &[Subsample], mut f: impl FnMut(&mut [u8])) {
    if subsamples.is_empty() {
        f(sample);
        return;
    }
    let mut pos = 0;
    for s in subsamples {
        pos += usize::from(s.clear);
        let end = pos + s.protected as usize;
        if s.protected > 0 {
            f(&mut sample[pos..end]);
        }
        pos = end;
    }
}

/// CBC over `crypt` of every `crypt + skip` 16-byte blocks (all blocks when both are 0); a
/// trailing partial block stays clear. The encrypted blocks form one CBC chain, so they are
/// gathered into one buffer and encrypted in one call (a call per block costs more than the
/// block: the wide AES backends set up their round keys on every call), then put back.
fn cbc_pattern(
    cipher: &Aes128,
    iv: &[u8; 16],
    crypt: usize,
    skip: usize,
    data: &mut [u8],
    scratch: &mut Vec<aes::Block>,
) {
    use aes::cipher::{BlockModeEncrypt, InnerIvInit};
    let blocks = data.len() / 16;
    let (crypt, period) = if crypt == 0 {
        (1, 1)
    } else {
        (crypt, crypt + skip)
    };
    let mut mode = cbc::Encryptor::<Aes128>::inner_iv_init(cipher.clone(), &(*iv).into());
    if period == 1 {
        let (whole, _) = data.split_at_mut(blocks * 16);
        let (chunks, _) = aes::Block::slice_as_chunks_mut(whole);
        mode.encrypt_blocks(chunks);
        return;
    }
    let picked = || {
        (0..blocks)
            .step_by(period)
            .flat_map(move |start| start..(start + crypt).min(blocks))
    };
    scratch.clear();
    scratch.extend(picked().map(|b| {
        let arr: [u8; 16] = data[b * 16..b * 16 + 16].try_into().expect("16 bytes");
        aes::Block::from(arr)
    }));
    mode.encrypt_blocks(scratch);
    for (b, block) in picked().zip(scratch.iter()) {
        data[b * 16..b * 16 + 16].copy_from_slice(block);
    }
}

/// Decrypts a sample in place: the inverse of [`TrackEncryptor::encrypt`], for tests and tools.
pub fn decrypt_sample(
    key: &Key,
    info: &TrackEncryption,
    aux: &SampleEncryption,
    sample: &mut [u8],
) -> Result<()> {
    use aes::cipher::BlockCipherDecrypt;
    let k = *key.key.expose();
    match info.scheme {
        Scheme::Cenc => {
            let mut counter = [0u8; 16];
            let n = aux.iv.len().min(16);
            counter[..n].copy_from_slice(&aux.iv[..n]);
            let mut ctr = ctr::Ctr64BE::<Aes128>::new(&k.into(), &counter.into());
            for_each_protected(sample, &aux.subsamples, |r| ctr.apply_keystream(r));
        }
        Scheme::Cbcs => {
            let cipher = Aes128::new(&k.into());
            let iv = info.constant_iv.ok_or(DrmError::InvalidKeySpec {
                problem: "cbcs without a constant IV".into(),
            })?;
            let crypt = usize::from(info.crypt_byte_block);
            let skip = usize::from(info.skip_byte_block);
            for_each_protected(sample, &aux.subsamples, |data| {
                let mut chain = iv;
                let period = if crypt == 0 { 1 } else { crypt + skip };
                for b in 0..data.len() / 16 {
                    if b % period >= crypt.max(1) {
                        continue;
                    }
                    let block: &mut [u8; 16] =
                        (&mut data[b * 16..b * 16 + 16]).try_into().expect("16");
                    let next = *block;
                    cipher.decrypt_block(block.into());
                    for (x, c) in block.iter_mut().zip(chain.iter()) {
                        *x ^= c;
                    }
                    chain = next;
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_media::{AudioSpecificConfig, CodecConfig};

    fn hexv(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt): the counter block f0f1...feff increments
    /// in its low 64 bits, as `cenc` with a 16-byte IV does.
    #[test]
    fn ctr_known_answer() {
        let key = hexv("2b7e151628aed2a6abf7158809cf4f3c");
        let counter = hexv("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        let mut data = hexv(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        let k: [u8; 16] = key.try_into().unwrap();
        let c: [u8; 16] = counter.try_into().unwrap();
        let mut ctr = ctr::Ctr64BE::<Aes128>::new(&k.into(), &c.into());
        ctr.apply_keystream(&mut data);
        assert_eq!(
            data,
            hexv(
                "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
                 5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"
            )
        );
    }

    /// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt) through the 0:0 (every block) pattern, and
    /// the 1:9 pattern encrypting only blocks 0 and 10 with one chain.
    #[test]
    fn cbc_known_answer_and_pattern() {
        let k: [u8; 16] = hexv("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        let iv: [u8; 16] = hexv("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let cipher = Aes128::new(&k.into());
        let plain = hexv(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        let mut data = plain.clone();
        data.extend_from_slice(&[1, 2, 3]); // a partial block stays clear
        cbc_pattern(&cipher, &iv, 0, 0, &mut data, &mut Vec::new());
        assert_eq!(
            data[..64],
            hexv(
                "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
                 73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
            )[..]
        );
        assert_eq!(data[64..], [1, 2, 3]);

        // 1:9 over 11 blocks: block 0 = first CBC block, blocks 1..=9 clear, block 10 chained
        // from block 0's ciphertext.
        let mut data = vec![0u8; 16 * 11 + 5];
        data[..16].copy_from_slice(&plain[..16]);
        data[160..176].copy_from_slice(&plain[16..32]);
        cbc_pattern(&cipher, &iv, 1, 9, &mut data, &mut Vec::new());
        assert_eq!(data[..16], hexv("7649abac8119b246cee98e9b12e9197d")[..]);
        assert_eq!(data[160..176], hexv("5086cb9b507219ee95db113a917678b2")[..]);
        assert!(data[16..160].iter().all(|&b| b == 0));
    }

    #[test]
    fn round_trip_both_schemes() {
        let key = Key::parse("00000000000000000000000000000001:00112233445566778899aabbccddeeff")
            .unwrap();
        let config = CodecConfig::Aac(AudioSpecificConfig::new(2, 48_000, 2).unwrap());
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let mut enc =
                TrackEncryptor::with_iv(scheme, &key, &config, TrackKind::Audio, [9; 16]).unwrap();
            let clear: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
            let mut s = clear.clone();
            let aux = enc.encrypt(&mut s).unwrap();
            assert_ne!(s, clear);
            if scheme == Scheme::Cbcs {
                // Whole blocks only: the last 1000 % 16 bytes stay clear.
                assert_eq!(s[992..], clear[992..]);
                assert!(aux.iv.is_empty());
            }
            decrypt_sample(&key, enc.info(), &aux, &mut s).unwrap();
            assert_eq!(s, clear);
        }
        // Per-sample IVs of cenc count up.
        let mut enc =
            TrackEncryptor::with_iv(Scheme::Cenc, &key, &config, TrackKind::Audio, [0; 16])
                .unwrap();
        let a = enc.encrypt(&mut [0u8; 20]).unwrap();
        let b = enc.encrypt(&mut [0u8; 20]).unwrap();
        assert_eq!(a.iv, [0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.iv, [0, 0, 0, 0, 0, 0, 0, 1]);
    }
}
