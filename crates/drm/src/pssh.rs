//! DRM systems and their `pssh` payloads: W3C common (key IDs only), Widevine
//! (`WidevinePsshData` protobuf) and PlayReady (PlayReady Object with a WRM header).

use crate::crypt::Scheme;
use crate::key::{Key, KeyId};
use crate::{DrmError, Result};
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use base64::Engine;

/// A DRM system the output is signalled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DrmSystem {
    /// W3C ClearKey: the common PSSH system ID, and `dashif:laurl` / HLS identity keys.
    ClearKey,
    Widevine,
    PlayReady,
    /// FairPlay: HLS `com.apple.streamingkeydelivery` key tags (cbcs only, no PSSH).
    FairPlay,
}

/// `1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`: the W3C common PSSH format (used by ClearKey).
pub const COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];
/// `edef8ba9-79d6-4ace-a3c8-27dcd51d21ed`.
pub const WIDEVINE_SYSTEM_ID: [u8; 16] = [
    0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed,
];
/// `9a04f079-9840-4286-ab92-e65be0885f95`.
pub const PLAYREADY_SYSTEM_ID: [u8; 16] = [
    0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95,
];
/// `94ce86fb-07ff-4f43-adb8-93d2fa968ca2`: FairPlay's system ID (DASH signalling only).
pub const FAIRPLAY_SYSTEM_ID: [u8; 16] = [
    0x94, 0xce, 0x86, 0xfb, 0x07, 0xff, 0x4f, 0x43, 0xad, 0xb8, 0x93, 0xd2, 0xfa, 0x96, 0x8c, 0xa2,
];

impl DrmSystem {
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let s = match part.to_ascii_lowercase().as_str() {
                "clearkey" | "common" | "w3c" => DrmSystem::ClearKey,
                "widevine" => DrmSystem::Widevine,
                "playready" => DrmSystem::PlayReady,
                "fairplay" => DrmSystem::FairPlay,
                other => {
                    return Err(DrmError::InvalidKeySpec {
                        problem: format!(
                            "unknown DRM system '{other}' (expected widevine, playready, fairplay or clearkey)"
                        ),
                    })
                }
            };
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn name(self) -> &'static str {
        match self {
            DrmSystem::ClearKey => "clearkey",
            DrmSystem::Widevine => "widevine",
            DrmSystem::PlayReady => "playready",
            DrmSystem::FairPlay => "fairplay",
        }
    }

    /// The system ID used in DASH `ContentProtection` (`urn:uuid:...`).
    pub fn system_id(self) -> [u8; 16] {
        match self {
            DrmSystem::ClearKey => COMMON_SYSTEM_ID,
            DrmSystem::Widevine => WIDEVINE_SYSTEM_ID,
            DrmSystem::PlayReady => PLAYREADY_SYSTEM_ID,
            DrmSystem::FairPlay => FAIRPLAY_SYSTEM_ID,
        }
    }

    /// `urn:uuid:` followed by the system ID in UUID form.
    pub fn scheme_id_uri(self) -> String {
        format!("urn:uuid:{}", KeyId::from_bytes(self.system_id()))
    }

    /// Whether the scheme can be used with this system.
    pub fn check_scheme(self, scheme: Scheme) -> Result<()> {
        if self == DrmSystem::FairPlay && scheme != Scheme::Cbcs {
            return Err(DrmError::Unsupported {
                problem: "FairPlay needs the cbcs scheme".into(),
            });
        }
        Ok(())
    }
}

/// One `pssh` box's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pssh {
    pub system_id: [u8; 16],
    /// Version 1 boxes list key IDs; version 0 boxes do not.
    pub version: u8,
    pub key_ids: Vec<KeyId>,
    pub data: Vec<u8>,
}

impl Pssh {
    /// The complete `pssh` box (ISO/IEC 23001-7 8.1).
    ///
    /// ```
    /// use reel_drm::{KeyId, Pssh};
    /// let kid = KeyId::parse("00000000000000000000000000000001").unwrap();
    /// let b = Pssh::common(&[kid]).to_box();
    /// assert_eq!(&b[4..8], b"pssh");
    /// assert_eq!(b.len(), 8 + 4 + 16 + 4 + 16 + 4);
    /// ```
    pub fn to_box(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(u32::from(self.version) << 24).to_be_bytes());
        body.extend_from_slice(&self.system_id);
        if self.version > 0 {
            body.extend_from_slice(&(self.key_ids.len() as u32).to_be_bytes());
            for k in &self.key_ids {
                body.extend_from_slice(k.as_bytes());
            }
        }
        body.extend_from_slice(&(self.data.len() as u32).to_be_bytes());
        body.extend_from_slice(&self.data);
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
        out.extend_from_slice(b"pssh");
        out.extend_from_slice(&body);
        out
    }

    /// The W3C common PSSH: version 1 with the key IDs and no data.
    pub fn common(key_ids: &[KeyId]) -> Self {
        Self {
            system_id: COMMON_SYSTEM_ID,
            version: 1,
            key_ids: key_ids.to_vec(),
            data: Vec::new(),
        }
    }

    /// Widevine: version 0 with a `WidevinePsshData` message (key_ids = 2, content_id = 4,
    /// protection_scheme = 9 as the scheme's four-character code).
    pub fn widevine(key_ids: &[KeyId], content_id: Option<&[u8]>, scheme: Scheme) -> Self {
        let mut data = Vec::new();
        for k in key_ids {
            data.push(0x12);
            varint(16, &mut data);
            data.extend_from_slice(k.as_bytes());
        }
        if let Some(c) = content_id {
            data.push(0x22);
            varint(c.len() as u64, &mut data);
            data.extend_from_slice(c);
        }
        data.push(0x48);
        varint(u64::from(u32::from_be_bytes(*scheme.fourcc())), &mut data);
        Self {
            system_id: WIDEVINE_SYSTEM_ID,
            version: 0,
            key_ids: Vec::new(),
            data,
        }
    }

    /// PlayReady: version 0 with a PlayReady Object holding one WRM header record; header
    /// version 4.0 (AESCTR, with the key's checksum) for `cenc`, 4.3 (AESCBC) for `cbcs`.
    pub fn playready(key: &Key, scheme: Scheme, license_url: Option<&str>) -> Self {
        let xml = playready_header(key, scheme, license_url);
        let utf16: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut data = Vec::with_capacity(utf16.len() + 10);
        data.extend_from_slice(&((utf16.len() + 10) as u32).to_le_bytes());
        data.extend_from_slice(&1u16.to_le_bytes()); // one record
        data.extend_from_slice(&1u16.to_le_bytes()); // rights management header
        data.extend_from_slice(&(utf16.len() as u16).to_le_bytes());
        data.extend_from_slice(&utf16);
        Self {
            system_id: PLAYREADY_SYSTEM_ID,
            version: 0,
            key_ids: Vec::new(),
            data,
        }
    }
}

/// A key ID as PlayReady writes a GUID: the first three fields little-endian.
fn guid_bytes(kid: &KeyId) -> [u8; 16] {
    let b = kid.as_bytes();
    let mut g = *b;
    g[..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    g[4..6].copy_from_slice(&[b[5], b[4]]);
    g[6..8].copy_from_slice(&[b[7], b[6]]);
    g
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The WRM header XML (PlayReady Header Specification). The checksum (v4.0) is the first 8
/// bytes of the key ID encrypted with the content key: it lets a client check the key, it does
/// not reveal it.
pub fn playready_header(key: &Key, scheme: Scheme, license_url: Option<&str>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let guid = guid_bytes(&key.kid);
    let kid = b64.encode(guid);
    let la = license_url
        .map(|u| format!("<LA_URL>{}</LA_URL>", xml_escape(u)))
        .unwrap_or_default();
    match scheme {
        Scheme::Cenc => {
            let cipher = aes::Aes128::new(&(*key.key.expose()).into());
            let mut block = guid;
            cipher.encrypt_block((&mut block).into());
            let checksum = b64.encode(&block[..8]);
            format!(
                "<WRMHEADER xmlns=\"http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader\" version=\"4.0.0.0\"><DATA><PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO><KID>{kid}</KID><CHECKSUM>{checksum}</CHECKSUM>{la}</DATA></WRMHEADER>"
            )
        }
        Scheme::Cbcs => format!(
            "<WRMHEADER xmlns=\"http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader\" version=\"4.3.0.0\"><DATA><PROTECTINFO><KIDS><KID ALGID=\"AESCBC\" VALUE=\"{kid}\"></KID></KIDS></PROTECTINFO>{la}</DATA></WRMHEADER>"
        ),
    }
}

/// A protobuf varint is the same base-128 little-endian encoding as AV1's `leb128()`.
fn varint(v: u64, out: &mut Vec<u8>) {
    reel_media::av1::write_leb128(v, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_pssh_bytes() {
        // W3C "Common SystemID and PSSH Box Format", example with one KID.
        let kid = KeyId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let b = Pssh::common(&[kid]).to_box();
        let mut want = vec![0, 0, 0, 0x34, b'p', b's', b's', b'h', 1, 0, 0, 0];
        want.extend_from_slice(&COMMON_SYSTEM_ID);
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(kid.as_bytes());
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(b, want);
    }

    #[test]
    fn widevine_protobuf() {
        let kid = KeyId::parse("00000000000000000000000000000001").unwrap();
        let p = Pssh::widevine(&[kid], None, Scheme::Cenc);
        let mut want = vec![0x12, 0x10];
        want.extend_from_slice(kid.as_bytes());
        // field 9, varint 0x63656e63 ('cenc')
        want.extend_from_slice(&[0x48, 0xe3, 0xdc, 0x95, 0x9b, 0x06]);
        assert_eq!(p.data, want);
    }

    #[test]
    fn playready_guid_order_and_record_lengths() {
        let key =
            Key::parse("01020304-0506-0708-090a-0b0c0d0e0f10:00112233445566778899aabbccddeeff")
                .unwrap();
        assert_eq!(
            guid_bytes(&key.kid),
            [4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        let p = Pssh::playready(&key, Scheme::Cbcs, Some("https://lic.example/?a=1&b=2"));
        let total = u32::from_le_bytes(p.data[..4].try_into().unwrap()) as usize;
        assert_eq!(total, p.data.len());
        let len = u16::from_le_bytes(p.data[8..10].try_into().unwrap()) as usize;
        assert_eq!(len + 10, total);
        let xml: String = char::decode_utf16(
            p.data[10..]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]])),
        )
        .map(|c| c.unwrap())
        .collect();
        assert!(
            xml.contains("version=\"4.3.0.0\"") && xml.contains("AESCBC"),
            "{xml}"
        );
        assert!(xml.contains("&amp;b=2"));
        assert!(
            !xml.contains("ABEiM0RVZneImaq7zN3u/w"),
            "no key in the header"
        );
    }

    #[test]
    fn system_lists() {
        assert_eq!(
            DrmSystem::parse_list("widevine, clearkey,playready,widevine").unwrap(),
            vec![
                DrmSystem::ClearKey,
                DrmSystem::Widevine,
                DrmSystem::PlayReady
            ]
        );
        assert!(DrmSystem::parse_list("marlin").is_err());
        assert_eq!(
            DrmSystem::Widevine.scheme_id_uri(),
            "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
        );
    }
}
