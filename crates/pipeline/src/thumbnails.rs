//! Scrubbing thumbnails: the tiles the encode takes from its own decode, laid into JPEG
//! sprites in the renditions folder (`thumbnails/`, with `thumbnails.json`), then copied into
//! each package beside the manifests that list them.

use crate::job::ThumbnailSpec;
use crate::{io_error, PipelineError};
use reel_media::Picture;
use reel_packager::{Sprite, ThumbnailTrack, THUMBNAILS_DIR};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `thumbnails.json` in the renditions' thumbnail folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredThumbnails {
    /// The settings the sprites were made with.
    spec: ThumbnailSpec,
    track: ThumbnailTrack,
}

const RECORD: &str = "thumbnails.json";

/// JPEG quality of a sprite.
const SPRITE_QUALITY: u8 = 80;

/// Sprites written as the tiles arrive, in the title's order, into a temporary folder that
/// becomes the renditions' `thumbnails/` when the last is written.
pub(crate) struct SpriteSheets {
    tmp: PathBuf,
    dir: PathBuf,
    spec: ThumbnailSpec,
    plan: reel_encoder::ThumbnailPlan,
    timescale: u32,
    frame_duration: u32,
    /// Limited-range BT.709 (HD) or BT.601 pictures, as the poster reads them.
    bt709: bool,
    /// The sprite being filled, RGB.
    rgb: Vec<u8>,
    in_sprite: u32,
    next_tile: u64,
    sprites: Vec<Sprite>,
}

impl SpriteSheets {
    /// Sprites of the tiles `plan` takes, in `renditions/thumbnails`.
    pub(crate) fn new(
        renditions: &Path,
        spec: &ThumbnailSpec,
        plan: &reel_encoder::EncodePlan,
    ) -> Result<Option<Self>, PipelineError> {
        let Some(tiles) = plan.thumbnails else {
            return Ok(None);
        };
        let dir = renditions.join(THUMBNAILS_DIR);
        let tmp = renditions.join(format!(".{THUMBNAILS_DIR}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        let sprite_px = (spec.columns * tiles.width) as usize * (spec.rows * tiles.height) as usize;
        Ok(Some(SpriteSheets {
            tmp,
            dir,
            spec: spec.clone(),
            plan: tiles,
            timescale: plan.timescale,
            frame_duration: plan.frame_duration,
            bt709: plan.source.video().is_some_and(crate::poster::bt709),
            rgb: vec![0; sprite_px * 3],
            in_sprite: 0,
            next_tile: 0,
            sprites: Vec::new(),
        }))
    }

    fn sprite_width(&self) -> usize {
        (self.spec.columns * self.plan.width) as usize
    }

    /// Lays the tile of title frame `frame` into the sprite; a full sprite is written.
    pub(crate) fn push(&mut self, frame: u64, tile: &Picture) -> Result<(), PipelineError> {
        let expected = self.next_tile * self.plan.every_frames;
        if frame != expected || (tile.width, tile.height) != (self.plan.width, self.plan.height) {
            return Err(PipelineError::State {
                path: self.tmp.clone(),
                detail: format!(
                    "thumbnail of frame {frame} ({}x{}) came where frame {expected} ({}x{}) was due",
                    tile.width, tile.height, self.plan.width, self.plan.height
                ),
            });
        }
        let rgb = crate::poster::to_rgb(tile, self.bt709);
        let (col, row) = (
            self.in_sprite % self.spec.columns,
            self.in_sprite / self.spec.columns,
        );
        let (w, h) = (self.plan.width as usize, self.plan.height as usize);
        let stride = self.sprite_width() * 3;
        for y in 0..h {
            let at = (row as usize * h + y) * stride + col as usize * w * 3;
            self.rgb[at..at + w * 3].copy_from_slice(&rgb[y * w * 3..(y + 1) * w * 3]);
        }
        self.in_sprite += 1;
        self.next_tile += 1;
        if self.in_sprite == self.spec.columns * self.spec.rows {
            self.write_sprite()?;
        }
        Ok(())
    }

    /// Writes the sprite being filled (its empty places black) as `N.jpg`.
    fn write_sprite(&mut self) -> Result<(), PipelineError> {
        let file = format!("{}.jpg", self.sprites.len() + 1);
        let path = self.tmp.join(&file);
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, SPRITE_QUALITY)
            .encode(
                &self.rgb,
                self.sprite_width() as u16,
                (self.spec.rows * self.plan.height) as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .map_err(|e| PipelineError::State {
                path: path.clone(),
                detail: format!("JPEG: {e}"),
            })?;
        std::fs::write(&path, &jpeg).map_err(io_error(&path))?;
        self.sprites.push(Sprite {
            file,
            bytes: jpeg.len() as u64,
            tiles: self.in_sprite,
        });
        self.in_sprite = 0;
        self.rgb.fill(0);
        Ok(())
    }

    /// Writes the last sprite and the record, and puts the folder in place of any earlier one.
    pub(crate) fn finish(mut self) -> Result<(), PipelineError> {
        if self.in_sprite > 0 {
            self.write_sprite()?;
        }
        if self.sprites.is_empty() {
            let _ = std::fs::remove_dir_all(&self.tmp);
            return Ok(());
        }
        let tile_duration = self.plan.every_frames * u64::from(self.frame_duration);
        let stored = StoredThumbnails {
            spec: self.spec.clone(),
            track: ThumbnailTrack {
                tile_width: self.plan.width,
                tile_height: self.plan.height,
                columns: self.spec.columns,
                rows: self.spec.rows,
                timescale: self.timescale,
                tile_duration,
                sprites: std::mem::take(&mut self.sprites),
            },
        };
        let record = self.tmp.join(RECORD);
        std::fs::write(
            &record,
            serde_json::to_vec_pretty(&stored).expect("thumbnails serialize"),
        )
        .map_err(io_error(&record))?;
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::rename(&self.tmp, &self.dir).map_err(io_error(&self.dir))
    }
}

/// Finished thumbnails in the renditions folder, ready to go into a package.
#[derive(Debug, Clone)]
pub struct ThumbnailSprites {
    dir: PathBuf,
    pub(crate) track: ThumbnailTrack,
}

impl ThumbnailSprites {
    /// The thumbnails of `renditions` when they were made with `spec`; `Err` says why not
    /// (for a notice): none made yet, or made with other settings.
    pub(crate) fn load(renditions: &Path, spec: &ThumbnailSpec) -> Result<Self, String> {
        let dir = renditions.join(THUMBNAILS_DIR);
        let stored: StoredThumbnails = std::fs::read(dir.join(RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("none were made when the video was encoded")?;
        if stored.spec != *spec {
            return Err("they were made with other [thumbnails] settings".into());
        }
        let whole = stored
            .track
            .sprites
            .iter()
            .all(|s| std::fs::metadata(dir.join(&s.file)).is_ok_and(|m| m.len() == s.bytes));
        if !whole {
            return Err("a sprite is missing or cut short".into());
        }
        Ok(ThumbnailSprites {
            dir,
            track: stored.track,
        })
    }

    /// A fingerprint of the sprites, for the package's.
    pub(crate) fn fingerprint(&self) -> serde_json::Value {
        serde_json::to_value(&self.track).expect("thumbnails serialize")
    }

    /// Copies the sprites into `package/thumbnails` (linked when the file system allows). The
    /// playlists that list them come with the manifests.
    pub(crate) fn copy_into(&self, package: &Path) -> Result<&ThumbnailTrack, PipelineError> {
        let to = package.join(THUMBNAILS_DIR);
        std::fs::create_dir_all(&to).map_err(io_error(&to))?;
        for s in &self.track.sprites {
            let (from, dest) = (self.dir.join(&s.file), to.join(&s.file));
            let _ = std::fs::remove_file(&dest);
            if std::fs::hard_link(&from, &dest).is_err() {
                std::fs::copy(&from, &dest).map_err(io_error(&dest))?;
            }
        }
        Ok(&self.track)
    }

    /// What `title.json` says of them.
    pub(crate) fn record(&self) -> reel_media::Thumbnails {
        reel_media::Thumbnails {
            width: self.track.tile_width,
            height: self.track.tile_height,
            columns: self.track.columns,
            rows: self.track.rows,
            interval: self.track.tile_duration as f64 / f64::from(self.track.timescale.max(1)),
            tiles: self.track.tiles(),
            sprites: self.track.sprites.len(),
            hls: format!("{THUMBNAILS_DIR}/{}", reel_packager::THUMBNAILS_PLAYLIST),
            webvtt: format!("{THUMBNAILS_DIR}/{}", reel_packager::THUMBNAILS_VTT),
        }
    }
}
