//! Languages of text tracks: a BCP 47 tag (`pt-BR`, `zh-Hant`, `en`) checked against the IANA
//! registry, for DASH `lang` and HLS `LANGUAGE`, and the ISO 639-2/T code of its primary
//! language that `mdhd` carries (`por`, `zho`, `eng`).

use crate::{Result, TextError};

/// A well-formed, registered BCP 47 language tag with a primary language `mdhd` can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// The tag in its canonical case (`pt-BR`).
    pub tag: String,
    /// ISO 639-2/T code of the primary language.
    pub iso639_2: String,
}

impl Language {
    pub fn parse(tag: &str) -> Result<Language> {
        let problem = |problem: String| TextError::Language {
            tag: tag.to_string(),
            problem,
        };
        let parsed = language_tags::LanguageTag::parse(tag)
            .map_err(|e| problem(format!("not a BCP 47 language tag ({e})")))?;
        parsed.validate().map_err(|e| {
            // BCP 47 takes the shortest ISO 639 code: `de`, not `deu` or `ger`.
            let shorter = reel_media::language::iso639_2t(parsed.primary_language())
                .and_then(|t| isolang::Language::from_639_3(&t))
                .and_then(|l| l.to_639_1());
            match shorter {
                Some(code) => problem(format!("BCP 47 writes this language '{code}'")),
                None => problem(format!("not a registered language tag ({e})")),
            }
        })?;
        let iso639_2 =
            reel_media::language::iso639_2t(parsed.primary_language()).ok_or_else(|| {
                problem("its primary language has no ISO 639-2 code for the MP4 header".into())
            })?;
        Ok(Language {
            tag: canonical_case(parsed.as_str()),
            iso639_2,
        })
    }
}

impl Language {
    /// The language as a track carries it (`TrackInfo::language`): the ISO 639-2 code when
    /// the tag names only a language (`de` is `deu`), the whole tag when it says more (a
    /// region or script: `pt-BR`, `zh-Hant`), which the MP4 keeps in an `elng` box beside the
    /// `mdhd` code.
    pub fn track_language(&self) -> String {
        if self.tag.contains('-') {
            self.tag.clone()
        } else {
            self.iso639_2.clone()
        }
    }
}

/// BCP 47's conventional case: language lower, script title, region upper (`zh-Hant-TW`).
fn canonical_case(tag: &str) -> String {
    tag.split('-')
        .enumerate()
        .map(|(i, part)| match part.len() {
            _ if i == 0 => part.to_ascii_lowercase(),
            2 if part.bytes().all(|b| b.is_ascii_alphabetic()) => part.to_ascii_uppercase(),
            4 if part.bytes().all(|b| b.is_ascii_alphabetic()) => {
                let mut s = part.to_ascii_lowercase();
                s[..1].make_ascii_uppercase();
                s
            }
            _ => part.to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_their_mdhd_codes() {
        let l = Language::parse("pt-br").unwrap();
        assert_eq!((l.tag.as_str(), l.iso639_2.as_str()), ("pt-BR", "por"));
        let l = Language::parse("zh-hant").unwrap();
        assert_eq!((l.tag.as_str(), l.iso639_2.as_str()), ("zh-Hant", "zho"));
        assert_eq!(Language::parse("en").unwrap().iso639_2, "eng");
        // As a track carries it: the code alone, or the whole tag when it says more.
        assert_eq!(Language::parse("en").unwrap().track_language(), "eng");
        assert_eq!(Language::parse("pt-br").unwrap().track_language(), "pt-BR");
        let err = Language::parse("ger").unwrap_err().to_string();
        assert_eq!(err, "language 'ger': BCP 47 writes this language 'de'");
    }

    #[test]
    fn unknown_codes_are_refused() {
        for tag in ["xx", "english", "en_US", "", "qqq-ZZ-"] {
            let err = Language::parse(tag).unwrap_err().to_string();
            assert!(err.starts_with(&format!("language '{tag}': ")), "{err}");
        }
    }
}
