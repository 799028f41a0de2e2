//! End-to-end: HDR10 beside SDR. `reel package` takes an HDR10 AV1 rendition (10-bit, BT.2020,
//! PQ, mastering display and content light level in its metadata OBUs, made by ffmpeg's
//! libsvtav1) and an SDR one (8-bit, BT.709) of the same picture. Judged by ffprobe (colour
//! and HDR side data of the packaged track), the manifests' own parsers (DASH `cicp`
//! properties, HLS `VIDEO-RANGE`, full AV1 codec string), Chromium's
//! `MediaSource.isTypeSupported` and shaka-player, which plays the SDR variant on this
//! (SDR) display.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

const MASTERING: &str =
    "G(0.2650,0.6900)B(0.1500,0.0600)R(0.6800,0.3200)WP(0.3127,0.3290)L(1000.0,0.0001)";

/// Two AV1 renditions of one test card, key frames every 2 s in both.
fn renditions(dir: &Path) {
    let common = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
        "-t",
        "6",
        "-c:v",
        "libsvtav1",
        "-preset",
        "12",
        "-g",
        "50",
    ];
    let hdr_params = format!("mastering-display={MASTERING}:content-light=1000,400");
    let mut hdr: Vec<&str> = common.to_vec();
    hdr.extend([
        "-pix_fmt",
        "yuv420p10le",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        "smpte2084",
        "-colorspace",
        "bt2020nc",
        "-svtav1-params",
        &hdr_params,
    ]);
    let hdr_path = dir.join("hdr.mp4");
    hdr.push(hdr_path.to_str().unwrap());
    let o = tool("ffmpeg", &hdr);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut sdr: Vec<&str> = common.to_vec();
    sdr.extend([
        "-vf",
        "scale=480:270",
        "-pix_fmt",
        "yuv420p",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-colorspace",
        "bt709",
    ]);
    let sdr_path = dir.join("sdr.mp4");
    sdr.push(sdr_path.to_str().unwrap());
    let o = tool("ffmpeg", &sdr);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The packaged track `stem` as one file (init and every segment), for ffprobe.
fn joined(out: &Path, stem: &str, to: &Path) {
    let dir = out.join(stem);
    let mut numbers: Vec<u32> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".m4s")?
                .parse()
                .ok()
        })
        .collect();
    numbers.sort();
    let mut bytes = std::fs::read(dir.join("init.mp4")).unwrap();
    for n in numbers {
        bytes.extend(std::fs::read(dir.join(format!("{n}.m4s"))).unwrap());
    }
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn hdr10_keeps_its_colour_and_metadata_beside_sdr() {
    let dir = tempfile::tempdir().unwrap();
    renditions(dir.path());
    let out = dir.path().join("pkg");
    reel_ok(&[
        "package",
        dir.path().join("hdr.mp4").to_str().unwrap(),
        dir.path().join("sdr.mp4").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--segment-duration",
        "2",
    ]);

    // ffprobe: the packaged HDR track's colour, and the mastering display and light levels
    // from its sample entry (mdcv, clli).
    let file = dir.path().join("hdr_joined.mp4");
    joined(&out, "hdr", &file);
    let o = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-of",
            "json",
            file.to_str().unwrap(),
        ],
    );
    let probe: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &probe["streams"][0];
    assert_eq!(s["pix_fmt"], "yuv420p10le", "{s}");
    assert_eq!(
        (
            &s["color_primaries"],
            &s["color_transfer"],
            &s["color_space"]
        ),
        (
            &Value::from("bt2020"),
            &Value::from("smpte2084"),
            &Value::from("bt2020nc")
        ),
        "{s}"
    );
    let side: Vec<&Value> = s["side_data_list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    let mastering = side
        .iter()
        .find(|d| d["side_data_type"] == "Mastering display metadata")
        .unwrap_or_else(|| panic!("no mastering display side data: {s}"));
    assert_eq!(mastering["red_x"], "34000/50000", "{mastering}");
    assert_eq!(mastering["green_y"], "34500/50000", "{mastering}");
    assert_eq!(mastering["max_luminance"], "10000000/10000", "{mastering}");
    let light = side
        .iter()
        .find(|d| d["side_data_type"] == "Content light level metadata")
        .unwrap_or_else(|| panic!("no content light level side data: {s}"));
    assert_eq!(
        (light["max_content"].as_u64(), light["max_average"].as_u64()),
        (Some(1000), Some(400))
    );
    // The SDR track says nothing of HDR.
    let sdr_file = dir.path().join("sdr_joined.mp4");
    joined(&out, "sdr", &sdr_file);
    let sdr = ffprobe_stream(&sdr_file);
    assert_eq!(sdr["color_transfer"], "bt709", "{sdr}");
    assert!(sdr.get("side_data_list").is_none(), "{sdr}");

    // DASH: an AdaptationSet per range; the HDR one with the cicp properties and the full
    // codec string.
    let mpd = dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap())
        .expect("MPD parses");
    let video: Vec<_> = mpd.periods[0]
        .adaptations
        .iter()
        .filter(|a| a.contentType.as_deref() == Some("video"))
        .collect();
    assert_eq!(video.len(), 2, "HDR and SDR are separate sets");
    let hdr_set = video
        .iter()
        .find(|a| !a.essential_property.is_empty())
        .expect("an HDR set");
    let props: Vec<(String, String)> = hdr_set
        .essential_property
        .iter()
        .map(|p| (p.schemeIdUri.clone(), p.value.clone().unwrap_or_default()))
        .collect();
    for (scheme, value) in [
        ("urn:mpeg:mpegB:cicp:ColourPrimaries", "9"),
        ("urn:mpeg:mpegB:cicp:TransferCharacteristics", "16"),
        ("urn:mpeg:mpegB:cicp:MatrixCoefficients", "9"),
    ] {
        assert!(
            props.contains(&(scheme.to_string(), value.to_string())),
            "{props:?}"
        );
    }
    let hdr_codec = hdr_set.representations[0].codecs.clone().unwrap();
    assert_eq!(hdr_codec, "av01.0.01M.10.0.110.09.16.09.0");
    let sdr_set = video
        .iter()
        .find(|a| a.essential_property.is_empty())
        .unwrap();
    let sdr_codec = sdr_set.representations[0].codecs.clone().unwrap();
    assert!(
        hdr_set.representations[0].bandwidth > sdr_set.representations[0].bandwidth,
        "the HDR variant is the costlier one, so a player that picks SDR picks it for its range"
    );
    assert_eq!(sdr_codec, "av01.0.00M.08", "BT.709 keeps the short form");

    // HLS: VIDEO-RANGE on every variant.
    let master =
        m3u8_rs::parse_master_playlist_res(&std::fs::read(out.join("master.m3u8")).unwrap())
            .expect("master parses");
    let range = |v: &m3u8_rs::VariantStream| {
        v.other_attributes
            .as_ref()
            .and_then(|a| a.get("VIDEO-RANGE"))
            .map(|r| r.to_string())
    };
    for v in master.variants.iter() {
        let want = if v.uri.starts_with("hdr/") {
            "PQ"
        } else {
            "SDR"
        };
        assert_eq!(range(v).as_deref(), Some(want), "{}", v.uri);
    }

    // Chromium takes the codec strings; shaka-player plays the SDR variant on this display.
    let types = [
        format!("video/mp4; codecs=\"{hdr_codec}\""),
        format!("video/mp4; codecs=\"{sdr_codec}\""),
    ];
    let mut args = vec![
        "--root",
        out.to_str().unwrap(),
        "--manifest",
        "manifest.mpd",
    ];
    args.extend(["--manifest", "master.m3u8"]);
    for t in &types {
        args.extend(["--type", t.as_str()]);
    }
    let (ok, results, err) = node("hdr.mjs", &args);
    assert!(ok && results.len() == 3, "hdr harness: {results:?} {err}");
    for t in &types {
        assert_eq!(results[0]["types"][t], true, "{t}: {}", results[0]);
    }
    for r in &results[1..] {
        assert_eq!(r["errors"], Value::Array(vec![]), "{r}");
        let ranges: Vec<&str> = r["variants"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["hdr"].as_str())
            .collect();
        assert!(
            ranges.contains(&"PQ") || r["manifest"] == "master.m3u8",
            "{r}"
        );
        // shaka-player's ABR would take the costlier HDR variant by bandwidth; on an SDR
        // display it prefers SDR (its HDR variants show as PQ; SDR ones carry no range in DASH).
        assert_ne!(r["played"]["hdr"], "PQ", "{r}");
        assert_eq!(r["played"]["height"], 270, "{r}");
        assert!(num(r, "time") >= 1.0, "{r}");
    }
}
