//! Language codes as ISO-BMFF stores them: `mdhd` carries a three-letter ISO 639-2/T code
//! (14496-12 8.4.2.3). Containers and GStreamer give two-letter ISO 639-1 codes as often
//! (GStreamer turns every language tag into 639-1 where one exists), so a track's language
//! is normalised here, once.

/// The three-letter ISO 639-2/T code for `code` (two-letter ISO 639-1 or three-letter ISO
/// 639-2/T or /B, any case), or `None` when it names no language.
pub fn iso639_2t(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_lowercase();
    let language = match code.len() {
        2 => isolang::Language::from_639_1(&code),
        3 => isolang::Language::from_639_3(&code).or_else(|| bibliographic(&code)),
        _ => None,
    }?;
    Some(language.to_639_3().to_string())
}

/// The ISO 639-2/T code of a track's language (an ISO 639 code, or a BCP 47 tag with more
/// than a language: `pt-BR`): the code of its primary language, as `mdhd` holds it.
pub fn primary_code(language: &str) -> Option<String> {
    iso639_2t(language.split('-').next().unwrap_or(""))
}

/// The English name of a track's language (an ISO 639 code or a BCP 47 tag), as menus list
/// it: `German` for `de`, `deu` or `ger`; the tag's other subtags after it, `Portuguese (BR)`
/// for `pt-BR`, `Chinese (Hant-TW)` for `zh-Hant-TW`; `Undetermined` for `und`; `None` for
/// codes that name no language.
pub fn english_name(language: &str) -> Option<String> {
    let name = isolang::Language::from_639_3(&primary_code(language)?)?.to_name();
    let rest: Vec<&str> = language.split('-').skip(1).collect();
    Some(match rest.is_empty() {
        true => name.to_string(),
        false => format!("{name} ({})", rest.join("-")),
    })
}

/// The ISO 639-2/B codes that differ from their /T code (`fre` for `fra`, ...).
fn bibliographic(code: &str) -> Option<isolang::Language> {
    isolang::Language::from_639_1(match code {
        "alb" => "sq",
        "arm" => "hy",
        "baq" => "eu",
        "bur" => "my",
        "chi" => "zh",
        "cze" => "cs",
        "dut" => "nl",
        "fre" => "fr",
        "geo" => "ka",
        "ger" => "de",
        "gre" => "el",
        "ice" => "is",
        "mac" => "mk",
        "mao" => "mi",
        "may" => "ms",
        "per" => "fa",
        "rum" => "ro",
        "slo" => "sk",
        "tib" => "bo",
        "wel" => "cy",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_and_three_letter_codes() {
        assert_eq!(iso639_2t("en").as_deref(), Some("eng"));
        assert_eq!(iso639_2t("FR").as_deref(), Some("fra"));
        assert_eq!(iso639_2t("fre").as_deref(), Some("fra"));
        assert_eq!(iso639_2t("deu").as_deref(), Some("deu"));
        assert_eq!(iso639_2t("ger").as_deref(), Some("deu"));
        assert_eq!(iso639_2t("und").as_deref(), Some("und"));
        assert_eq!(iso639_2t("xx"), None);
        assert_eq!(iso639_2t(""), None);
    }

    #[test]
    fn names_in_english() {
        assert_eq!(english_name("de").as_deref(), Some("German"));
        assert_eq!(english_name("ger").as_deref(), Some("German"));
        assert_eq!(english_name("eng").as_deref(), Some("English"));
        assert_eq!(english_name("pt-BR").as_deref(), Some("Portuguese (BR)"));
        assert_eq!(english_name("es-419").as_deref(), Some("Spanish (419)"));
        assert_eq!(
            english_name("zh-Hant-TW").as_deref(),
            Some("Chinese (Hant-TW)")
        );
        assert_eq!(english_name("und").as_deref(), Some("Undetermined"));
        assert_eq!(english_name("xx"), None);
        assert_eq!(primary_code("pt-BR").as_deref(), Some("por"));
    }
}
