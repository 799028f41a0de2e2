//! Several audio tracks, each with a language and a role, as DASH and HLS signal them; the
//! manifests are read back with the field's own parsers (`dash-mpd`, `m3u8-rs`).

mod support;

use reel_media::{AudioRole, Rational, TrackInfo};
use reel_packager::{dash_mpd, hls_playlists, Addressing, PackagedTrack, SegmentRecord};

fn packaged(info: TrackInfo) -> PackagedTrack {
    let timescale = u64::from(info.timescale);
    PackagedTrack {
        stem: info.name.clone(),
        info,
        addressing: Addressing::SegmentFiles,
        init_size: 800,
        index_size: 0,
        segments: (0..3)
            .map(|i| SegmentRecord {
                number: i + 1,
                start: i64::from(i) * 4 * timescale as i64,
                duration: 4 * timescale,
                offset: 0,
                size: 40_000,
                iframes: vec![(i64::from(i) * 4 * timescale as i64, 0, 10_000)],
            })
            .collect(),
        protection: None,
        text: None,
        trick_of: None,
    }
}

fn audio(id: u32, language: &str, role: AudioRole, name: &str) -> PackagedTrack {
    let mut t = support::audio_track(id, support::aac_config(), language, name);
    if let Some(a) = t.audio.as_mut() {
        a.role = role;
    }
    packaged(t)
}

fn title() -> Vec<PackagedTrack> {
    vec![
        packaged(support::video_track(
            1,
            support::avc_config(),
            90_000,
            Rational::new(25, 1),
            "720p",
        )),
        audio(2, "eng", AudioRole::Main, "audio"),
        audio(3, "deu", AudioRole::Dub, "audio_deu_dub"),
        audio(4, "eng", AudioRole::Description, "audio_eng_description"),
        audio(5, "eng", AudioRole::Commentary, "audio_eng_commentary"),
    ]
}

#[test]
fn dash_has_an_audio_set_per_language_and_role() {
    let mpd = dash_mpd_core::parse(&dash_mpd(&title(), None)).expect("the MPD parses");
    let sets: Vec<_> = mpd.periods[0]
        .adaptations
        .iter()
        .filter(|a| a.contentType.as_deref() == Some("audio"))
        .collect();
    let seen: Vec<(String, String, Vec<String>, String)> = sets
        .iter()
        .map(|a| {
            assert_eq!(a.Role.len(), 1);
            assert_eq!(a.Role[0].schemeIdUri, "urn:mpeg:dash:role:2011");
            (
                a.lang.clone().unwrap_or_default(),
                a.Role[0].value.clone().unwrap_or_default(),
                a.Accessibility
                    .iter()
                    .map(|x| format!("{}={}", x.schemeIdUri, x.value.clone().unwrap_or_default()))
                    .collect(),
                a.Label[0].content.clone(),
            )
        })
        .collect();
    let none = Vec::<String>::new;
    assert_eq!(
        seen,
        vec![
            ("eng".into(), "main".into(), none(), "English".into()),
            ("deu".into(), "dub".into(), none(), "German".into()),
            (
                "eng".into(),
                "description".into(),
                vec!["urn:tva:metadata:cs:AudioPurposeCS:2007=1".to_string()],
                "English audio description".into()
            ),
            (
                "eng".into(),
                "commentary".into(),
                none(),
                "English commentary".into()
            ),
        ]
    );
}

#[test]
fn hls_lists_every_audio_track_once_with_its_role() {
    let files = hls_playlists(&title(), None);
    let master = &files.iter().find(|f| f.0 == "master.m3u8").unwrap().1;
    let text = String::from_utf8(master.clone()).unwrap();
    let master = m3u8_rs::parse_master_playlist_res(master).expect("the master parses");
    let audio: Vec<_> = master
        .alternatives
        .iter()
        .filter(|m| m.media_type == m3u8_rs::AlternativeMediaType::Audio)
        .collect();
    let seen: Vec<(&str, &str, bool, bool, Option<&str>)> = audio
        .iter()
        .map(|m| {
            (
                m.language.as_deref().unwrap_or(""),
                m.name.as_str(),
                m.default,
                m.autoselect,
                m.characteristics.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("eng", "English", true, true, None),
            ("deu", "German", false, true, None),
            (
                "eng",
                "English audio description",
                false,
                true,
                Some("public.accessibility.describes-video")
            ),
            ("eng", "English commentary", false, false, None),
        ],
        "{text}"
    );
    // One group: every variant offers every language and role.
    assert!(audio.iter().all(|m| m.group_id == "audio"), "{text}");
    for v in master.variants.iter().filter(|v| !v.is_i_frame) {
        assert_eq!(v.audio.as_deref(), Some("audio"), "{text}");
    }
}

#[test]
fn two_tracks_with_one_label_get_distinct_names() {
    let mut tracks = title();
    tracks.push(audio(6, "deu", AudioRole::Dub, "audio_deu_dub_2"));
    let files = hls_playlists(&tracks, None);
    let master = &files.iter().find(|f| f.0 == "master.m3u8").unwrap().1;
    let master = m3u8_rs::parse_master_playlist_res(master).unwrap();
    let mut names: Vec<&str> = master
        .alternatives
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert!(names.contains(&"German (audio_deu_dub_2)"), "{names:?}");
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count);
}

#[test]
fn a_role_other_than_main_is_a_kind_box_in_the_init_segment() {
    use mp4_atom::{Decode, Ftyp, Moov};
    let role_of = |role: AudioRole| {
        let mut t = support::audio_track(2, support::aac_config(), "eng", "audio");
        t.audio.as_mut().unwrap().role = role;
        let init = reel_packager::init_segment(&t, &Default::default()).unwrap();
        let buf = &mut init.as_slice();
        Ftyp::decode(buf).unwrap();
        let moov = Moov::decode(buf).expect("strict mp4-atom reads the moov");
        moov.trak[0]
            .udta
            .as_ref()
            .map(|u| {
                u.kind
                    .iter()
                    .map(|k| (k.scheme_uri.clone(), k.value.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        role_of(AudioRole::Description),
        vec![(
            "urn:mpeg:dash:role:2011".to_string(),
            "description".to_string()
        )]
    );
    assert_eq!(role_of(AudioRole::Main), vec![]);
}
