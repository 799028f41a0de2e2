//! A thumbnail track for scrubbing: JPEG sprites of tiles in a grid, one tile per interval of
//! the title, in the three forms players read them:
//!
//! - DASH: an image AdaptationSet with the DASH-IF thumbnail descriptor (DASH-IF IOP 4.3,
//!   6.2.6): `EssentialProperty schemeIdUri="http://dashif.org/thumbnail_tile"` with the grid
//!   as `COLUMNSxROWS`, the Representation's size the whole sprite's, one sprite per segment
//!   of `SegmentTemplate@duration` (a player spreads the tiles evenly over that duration, so
//!   the last, partly filled sprite keeps the full duration);
//! - HLS: an image media playlist (Roku's and Apple's image playlists as shaka-player and
//!   others read them: `EXT-X-IMAGES-ONLY`, `EXT-X-TILES` with the tile size, layout and
//!   duration per sprite) named by `EXT-X-IMAGE-STREAM-INF` in the master, with the tile's
//!   size as `RESOLUTION`;
//! - WebVTT: a cue per tile whose text is the sprite's URL with a `#xywh=` media fragment
//!   (W3C Media Fragments 4.2.2), as web players that take a thumbnail track read it.

use dash_mpd_core as mpd;
use m3u8_rs::ExtTag;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The folder of the thumbnail files in a package.
pub const THUMBNAILS_DIR: &str = "thumbnails";
/// The HLS image playlist in [`THUMBNAILS_DIR`].
pub const THUMBNAILS_PLAYLIST: &str = "images.m3u8";
/// The WebVTT thumbnail track in [`THUMBNAILS_DIR`].
pub const THUMBNAILS_VTT: &str = "thumbnails.vtt";

/// One sprite: a JPEG of up to `columns` x `rows` tiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sprite {
    /// File name in [`THUMBNAILS_DIR`].
    pub file: String,
    pub bytes: u64,
    /// Tiles it holds (the last sprite may hold fewer than the grid).
    pub tiles: u32,
}

/// The thumbnails of a title: tile `k` shows the title from `k * tile_duration` (in
/// `timescale` ticks) until the next, or the title's end (which the playlists are given: the
/// presentation's duration, as the manifests state it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailTrack {
    pub tile_width: u32,
    pub tile_height: u32,
    pub columns: u32,
    pub rows: u32,
    pub timescale: u32,
    pub tile_duration: u64,
    pub sprites: Vec<Sprite>,
}

impl ThumbnailTrack {
    /// Tiles in a full sprite.
    pub fn tiles_per_sprite(&self) -> u32 {
        self.columns * self.rows
    }

    /// Every tile.
    pub fn tiles(&self) -> u64 {
        self.sprites.iter().map(|s| u64::from(s.tiles)).sum()
    }

    fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / f64::from(self.timescale.max(1))
    }

    fn millis(&self, ticks: u64) -> reel_text::Millis {
        (self.seconds(ticks) * 1000.0).round() as reel_text::Millis
    }

    /// A full sprite's duration in ticks.
    fn sprite_duration(&self) -> u64 {
        self.tile_duration * u64::from(self.tiles_per_sprite())
    }

    /// The costliest sprite's bits per second of the time it covers (a full sprite's).
    pub fn bandwidth(&self) -> u64 {
        let secs = self.seconds(self.sprite_duration()).max(1e-3);
        let bytes = self.sprites.iter().map(|s| s.bytes).max().unwrap_or(0);
        (bytes as f64 * 8.0 / secs).ceil() as u64
    }

    /// `end` in ticks.
    fn ticks(&self, end: Duration) -> u64 {
        (end.as_secs_f64() * f64::from(self.timescale)).round() as u64
    }

    /// Start and end (ticks) of tile `k` of a title ending at `end` ticks.
    fn tile_span(&self, k: u64, end: u64) -> (u64, u64) {
        let start = k * self.tile_duration;
        (start, (start + self.tile_duration).min(end.max(start)))
    }

    /// The DASH image AdaptationSet, numbered `id`.
    pub fn dash_adaptation_set(&self, id: usize) -> mpd::AdaptationSet {
        let representation = mpd::Representation {
            id: Some("thumbnails".into()),
            bandwidth: Some(self.bandwidth()),
            width: Some(u64::from(self.tile_width * self.columns)),
            height: Some(u64::from(self.tile_height * self.rows)),
            essential_property: vec![mpd::EssentialProperty {
                schemeIdUri: "http://dashif.org/thumbnail_tile".into(),
                value: Some(format!("{}x{}", self.columns, self.rows)),
                ..Default::default()
            }],
            SegmentTemplate: Some(mpd::SegmentTemplate {
                timescale: Some(u64::from(self.timescale)),
                duration: Some(self.sprite_duration() as f64),
                media: Some(format!("{THUMBNAILS_DIR}/$Number$.jpg")),
                startNumber: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        mpd::AdaptationSet {
            id: Some(id.to_string()),
            contentType: Some("image".into()),
            mimeType: Some("image/jpeg".into()),
            representations: vec![representation],
            ..Default::default()
        }
    }

    /// The master playlist's `EXT-X-IMAGE-STREAM-INF` line, naming the image playlist.
    pub fn hls_stream_inf(&self) -> ExtTag {
        ExtTag {
            tag: "X-IMAGE-STREAM-INF".into(),
            rest: Some(format!(
                "BANDWIDTH={},RESOLUTION={}x{},CODECS=\"jpeg\",URI=\"{THUMBNAILS_DIR}/{THUMBNAILS_PLAYLIST}\"",
                self.bandwidth(),
                self.tile_width,
                self.tile_height
            )),
        }
    }

    /// The HLS image media playlist of a title lasting `end`: one sprite per segment, each
    /// with its tiles.
    pub fn hls_playlist(&self, end: Duration) -> String {
        let end = self.ticks(end);
        let tile_secs = self.seconds(self.tile_duration);
        let mut spans = Vec::new();
        let mut first_tile = 0u64;
        for s in &self.sprites {
            let from = self.tile_span(first_tile, end).0;
            let to = self
                .tile_span(first_tile + u64::from(s.tiles.max(1)) - 1, end)
                .1;
            spans.push((s, self.seconds(to - from)));
            first_tile += u64::from(s.tiles);
        }
        let target = spans.iter().map(|s| s.1).fold(0.0, f64::max).ceil() as u64;
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n\
             #EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-IMAGES-ONLY\n"
        );
        for (s, secs) in spans {
            out.push_str(&format!(
                "#EXTINF:{secs:.3},\n#EXT-X-TILES:RESOLUTION={}x{},LAYOUT={}x{},DURATION={tile_secs:.3}\n{}\n",
                self.tile_width, self.tile_height, self.columns, self.rows, s.file
            ));
        }
        out.push_str("#EXT-X-ENDLIST\n");
        out
    }

    /// The WebVTT thumbnail track of a title lasting `end`: a cue per tile naming its sprite
    /// and its place in it.
    pub fn webvtt(&self, end: Duration) -> String {
        let end = self.ticks(end);
        let mut out = String::from("WEBVTT\n");
        let mut k = 0u64;
        for s in &self.sprites {
            for i in 0..s.tiles {
                let (from, to) = self.tile_span(k, end);
                let (x, y) = (i % self.columns, i / self.columns);
                out.push_str(&format!(
                    "\n{} --> {}\n{}#xywh={},{},{},{}\n",
                    reel_text::format_timestamp(self.millis(from)),
                    reel_text::format_timestamp(self.millis(to)),
                    s.file,
                    x * self.tile_width,
                    y * self.tile_height,
                    self.tile_width,
                    self.tile_height
                ));
                k += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The title's length.
    const TITLE: Duration = Duration::from_secs(113);

    /// 23 tiles of 320x180 every 5 s (25 fps ticks of 12,800 per second) in 10x2 sprites of
    /// a 113-s title: two sprites, the second holding 3 tiles, its last tile cut at 113 s.
    fn track() -> ThumbnailTrack {
        ThumbnailTrack {
            tile_width: 320,
            tile_height: 180,
            columns: 10,
            rows: 2,
            timescale: 12_800,
            tile_duration: 5 * 12_800,
            sprites: vec![
                Sprite {
                    file: "1.jpg".into(),
                    bytes: 250_000,
                    tiles: 20,
                },
                Sprite {
                    file: "2.jpg".into(),
                    bytes: 40_000,
                    tiles: 3,
                },
            ],
        }
    }

    #[test]
    fn dash_set_has_the_grid_the_sprite_size_and_a_full_sprite_per_segment() {
        let t = track();
        let set = t.dash_adaptation_set(4);
        let mpd = mpd::MPD {
            periods: vec![mpd::Period {
                adaptations: vec![set],
                ..Default::default()
            }],
            ..Default::default()
        };
        // Read back by the parser: what a player's parser sees.
        let parsed = dash_mpd_core::parse(&mpd.to_string()).expect("parses");
        let set = &parsed.periods[0].adaptations[0];
        assert_eq!(set.contentType.as_deref(), Some("image"));
        assert_eq!(set.mimeType.as_deref(), Some("image/jpeg"));
        let rep = &set.representations[0];
        assert_eq!((rep.width, rep.height), (Some(3200), Some(360)));
        assert_eq!(rep.essential_property[0].value.as_deref(), Some("10x2"));
        assert_eq!(
            rep.essential_property[0].schemeIdUri,
            "http://dashif.org/thumbnail_tile"
        );
        let template = rep.SegmentTemplate.as_ref().unwrap();
        assert_eq!(template.duration, Some(100.0 * 12_800.0));
        assert_eq!(template.media.as_deref(), Some("thumbnails/$Number$.jpg"));
        // 250,000 bytes over 100 s.
        assert_eq!(rep.bandwidth, Some(20_000));
    }

    #[test]
    fn hls_playlist_lists_each_sprite_with_its_tiles() {
        let text = track().hls_playlist(TITLE);
        let expected = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:100\n\
            #EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-IMAGES-ONLY\n\
            #EXTINF:100.000,\n#EXT-X-TILES:RESOLUTION=320x180,LAYOUT=10x2,DURATION=5.000\n1.jpg\n\
            #EXTINF:13.000,\n#EXT-X-TILES:RESOLUTION=320x180,LAYOUT=10x2,DURATION=5.000\n2.jpg\n\
            #EXT-X-ENDLIST\n";
        assert_eq!(text, expected);
        // m3u8-rs reads it as a media playlist of two segments.
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
        assert_eq!(parsed.segments.len(), 2);
        assert_eq!(parsed.segments[1].duration, 13.0);
        let inf = track().hls_stream_inf().to_string();
        assert_eq!(
            inf,
            "#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=20000,RESOLUTION=320x180,CODECS=\"jpeg\",\
             URI=\"thumbnails/images.m3u8\""
        );
    }

    #[test]
    fn webvtt_has_a_cue_per_tile_with_its_place_in_the_sprite() {
        let text = track().webvtt(TITLE);
        assert!(
            text.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:05.000\n1.jpg#xywh=0,0,320,180\n")
        );
        // Tile 12 is the second row's third.
        assert!(
            text.contains("\n00:01:00.000 --> 00:01:05.000\n1.jpg#xywh=640,180,320,180\n"),
            "{text}"
        );
        // The last tile (22, the second sprite's third) ends with the title.
        assert!(
            text.ends_with("\n00:01:50.000 --> 00:01:53.000\n2.jpg#xywh=640,0,320,180\n"),
            "{text}"
        );
        assert_eq!(text.matches("-->").count(), 23);
    }
}
