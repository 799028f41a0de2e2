//! DASH-IF CPIX (Content Protection Information Exchange) documents: read the keys a key
//! server hands over, and write generated keys for a licence server. Keys are in clear
//! (`pskc:PlainValue`); encrypted documents (`DeliveryDataList`) are refused.

use crate::key::{ContentKey, Key, KeyId, KeySet, TrackClass, MAX_HD_PIXELS, MAX_SD_PIXELS};
use crate::{DrmError, Result};
use base64::Engine;
use quick_xml::events::Event;
use quick_xml::Reader;
use std::path::Path;

fn err(path: &Path, problem: impl Into<String>) -> DrmError {
    DrmError::Cpix {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads a CPIX file into a key set. Usage rules (`intendedTrackType`, `VideoFilter`
/// pixel bounds, `AudioFilter`) give each key its track class; a single key without rules
/// protects every track.
pub fn read_cpix(path: &Path) -> Result<KeySet> {
    let text = std::fs::read_to_string(path).map_err(|source| DrmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_cpix(&text).map_err(|problem| err(path, problem))
}

/// Parses a CPIX document held in memory (as a service receives it); `origin` names where it
/// came from in errors. Errors never include key bytes.
pub fn parse_cpix_document(text: &str, origin: &str) -> Result<KeySet> {
    parse_cpix(text).map_err(|problem| err(Path::new(origin), problem))
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&c| c == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn parse_cpix(text: &str) -> std::result::Result<KeySet, String> {
    let mut reader = Reader::from_str(text);
    let mut keys: Vec<(KeyId, Option<ContentKey>)> = Vec::new();
    let mut rules: Vec<(KeyId, TrackClass)> = Vec::new();
    let mut current_kid: Option<KeyId> = None;
    let mut current_rule: Option<(KeyId, Option<TrackClass>)> = None;
    let mut in_plain = false;
    let mut saw_root = false;
    let attr = |e: &quick_xml::events::BytesStart,
                name: &[u8]|
     -> std::result::Result<Option<String>, String> {
        for a in e.attributes() {
            let a = a.map_err(|e| format!("bad attribute: {e}"))?;
            if local(a.key.as_ref()) == name {
                return Ok(Some(
                    a.unescape_value()
                        .map_err(|e| format!("bad attribute value: {e}"))?
                        .into_owned(),
                ));
            }
        }
        Ok(None)
    };
    loop {
        let ev = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            )
        })?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                match local(e.name().as_ref()) {
                    b"CPIX" => saw_root = true,
                    b"DeliveryDataList" => {
                        return Err("encrypted CPIX (DeliveryDataList) is not supported; give keys as PlainValue".into())
                    }
                    b"ContentKey" => {
                        let kid = attr(e, b"kid")?.ok_or("ContentKey without a kid attribute")?;
                        let kid = KeyId::parse(&kid).map_err(|e| e.to_string())?;
                        if keys.iter().any(|k| k.0 == kid) {
                            return Err(format!("key ID {kid} appears twice"));
                        }
                        keys.push((kid, None));
                        current_kid = (!empty).then_some(kid);
                    }
                    b"PlainValue" if current_kid.is_some() => in_plain = true,
                    b"EncryptedValue" if current_kid.is_some() => {
                        return Err("encrypted content keys are not supported".into())
                    }
                    b"ContentKeyUsageRule" => {
                        let kid = attr(e, b"kid")?.ok_or("ContentKeyUsageRule without a kid")?;
                        let kid = KeyId::parse(&kid).map_err(|e| e.to_string())?;
                        let class = match attr(e, b"intendedTrackType")? {
                            Some(t) => Some(TrackClass::parse(&t).map_err(|e| e.to_string())?),
                            None => None,
                        };
                        if empty {
                            if let Some(c) = class {
                                rules.push((kid, c));
                            }
                        } else {
                            current_rule = Some((kid, class));
                        }
                    }
                    b"AudioFilter" => {
                        if let Some(r) = current_rule.as_mut() {
                            r.1.get_or_insert(TrackClass::Audio);
                        }
                    }
                    b"VideoFilter" => {
                        if let Some(r) = current_rule.as_mut() {
                            let num = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok());
                            let min = num(attr(e, b"minPixels")?).unwrap_or(0);
                            let max = num(attr(e, b"maxPixels")?).unwrap_or(u64::MAX);
                            let class = if max <= MAX_SD_PIXELS {
                                TrackClass::Sd
                            } else if min > MAX_HD_PIXELS {
                                TrackClass::Uhd
                            } else if min > MAX_SD_PIXELS || max <= MAX_HD_PIXELS {
                                TrackClass::Hd
                            } else {
                                TrackClass::All
                            };
                            r.1.get_or_insert(class);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_plain => {
                let v = t
                    .decode()
                    .map_err(|e| format!("bad key text: {e}"))?
                    .trim()
                    .to_string();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_bytes())
                    .map_err(|_| "a PlainValue is not base64".to_string())?;
                let arr: [u8; 16] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| format!("a PlainValue is {} bytes, expected 16", bytes.len()))?;
                let kid = current_kid.expect("in a ContentKey");
                if let Some(k) = keys.iter_mut().find(|k| k.0 == kid) {
                    k.1 = Some(ContentKey::from_bytes(arr));
                }
            }
            Event::End(ref e) => match local(e.name().as_ref()) {
                b"PlainValue" => in_plain = false,
                b"ContentKey" => current_kid = None,
                b"ContentKeyUsageRule" => {
                    if let Some((kid, class)) = current_rule.take() {
                        rules.push((kid, class.unwrap_or(TrackClass::All)));
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err("no cpix:CPIX element".into());
    }
    if keys.is_empty() {
        return Err("no ContentKey".into());
    }
    let mut out = Vec::new();
    for (kid, key) in keys {
        let key = key.ok_or_else(|| format!("key ID {kid} has no key value"))?;
        let class = match rules.iter().find(|r| r.0 == kid) {
            Some(r) => r.1,
            None if rules.is_empty() => TrackClass::All,
            None => return Err(format!("key ID {kid} has no usage rule")),
        };
        out.push(Key { kid, key, class });
    }
    KeySet::new(out).map_err(|e| e.to_string())
}

/// Writes a CPIX document for `keys` (clear keys, usage rules per track class) to `path`
/// through a temporary name. `content_id` names the title.
pub fn write_cpix(path: &Path, keys: &KeySet, content_id: &str) -> Result<()> {
    let doc = cpix_document(keys, content_id);
    let tmp = path.with_extension("cpix.partial");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DrmError::Io { path: p, source }
    };
    write_secret(&tmp, doc.as_bytes()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Writes `bytes` to a new file only its owner can read (0600 on Unix): it holds keys.
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The CPIX XML for `keys`.
pub fn cpix_document(keys: &KeySet, content_id: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\" xmlns:pskc=\"urn:ietf:params:xml:ns:keyprov:pskc\" contentId=\"{}\" version=\"2.3\">\n",
        escape(content_id)
    ));
    x.push_str("  <cpix:ContentKeyList>\n");
    for k in keys.keys() {
        x.push_str(&format!(
            "    <cpix:ContentKey kid=\"{}\"><cpix:Data><pskc:Secret><pskc:PlainValue>{}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey>\n",
            k.kid,
            b64.encode(k.key.expose())
        ));
    }
    x.push_str("  </cpix:ContentKeyList>\n  <cpix:ContentKeyUsageRuleList>\n");
    for k in keys.keys() {
        let (ty, filter) = match k.class {
            TrackClass::All => ("ALL", String::new()),
            TrackClass::Audio => ("AUDIO", "<cpix:AudioFilter/>".to_string()),
            TrackClass::Sd => (
                "SD",
                format!("<cpix:VideoFilter maxPixels=\"{MAX_SD_PIXELS}\"/>"),
            ),
            TrackClass::Hd => (
                "HD",
                format!(
                    "<cpix:VideoFilter minPixels=\"{}\" maxPixels=\"{MAX_HD_PIXELS}\"/>",
                    MAX_SD_PIXELS + 1
                ),
            ),
            TrackClass::Uhd => (
                "UHD",
                format!("<cpix:VideoFilter minPixels=\"{}\"/>", MAX_HD_PIXELS + 1),
            ),
        };
        x.push_str(&format!(
            "    <cpix:ContentKeyUsageRule kid=\"{}\" intendedTrackType=\"{ty}\">{filter}</cpix:ContentKeyUsageRule>\n",
            k.kid
        ));
    }
    x.push_str("  </cpix:ContentKeyUsageRuleList>\n</cpix:CPIX>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let keys = KeySet::generate(&[
            TrackClass::Audio,
            TrackClass::Sd,
            TrackClass::Hd,
            TrackClass::Uhd,
        ])
        .unwrap();
        let doc = cpix_document(&keys, "title & co");
        let back = parse_cpix(&doc).unwrap();
        assert_eq!(back, keys);
    }

    #[cfg(unix)]
    #[test]
    fn a_written_key_file_is_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.cpix");
        let keys = KeySet::generate(&TrackClass::GENERATED).unwrap();
        write_cpix(&path, &keys, "t").unwrap();
        write_cpix(&path, &keys, "t").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert_eq!(read_cpix(&path).unwrap(), keys);
    }

    #[test]
    fn single_key_without_rules_and_errors() {
        let one = "<cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\" xmlns:pskc=\"urn:ietf:params:xml:ns:keyprov:pskc\"><cpix:ContentKeyList><cpix:ContentKey kid=\"10000000-1000-1000-1000-100000000001\"><cpix:Data><pskc:Secret><pskc:PlainValue>ABEiM0RVZneImaq7zN3u/w==</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList></cpix:CPIX>";
        let set = parse_cpix(one).unwrap();
        assert_eq!(set.keys()[0].class, TrackClass::All);
        assert_eq!(set.keys()[0].key.expose()[..4], [0x00, 0x11, 0x22, 0x33]);
        let short = one.replace("ABEiM0RVZneImaq7zN3u/w==", "ABEi");
        let e = parse_cpix(&short).unwrap_err();
        assert!(e.contains("3 bytes") && !e.contains("ABEi"), "{e}");
        let nokey = one.replace(
            "<cpix:Data><pskc:Secret><pskc:PlainValue>ABEiM0RVZneImaq7zN3u/w==</pskc:PlainValue></pskc:Secret></cpix:Data>",
            "",
        );
        assert!(parse_cpix(&nokey).unwrap_err().contains("no key value"));
        assert!(parse_cpix("<x/>").is_err());
        assert!(parse_cpix("<cpix:CPIX").is_err());
    }
}
