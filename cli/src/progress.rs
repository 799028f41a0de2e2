//! One indicatif bar per video rung, with frames per second and time left.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reel_encoder::{EncodePlan, Progress};
use std::collections::HashMap;

pub struct Bars {
    multi: MultiProgress,
    bars: HashMap<u32, ProgressBar>,
}

impl Bars {
    pub fn for_plan(plan: &EncodePlan) -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} frames {msg} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let mut bars = HashMap::new();
        for r in &plan.rungs {
            let bar = multi.add(ProgressBar::new(plan.frames_total.max(1)));
            bar.set_style(style.clone());
            bar.set_prefix(format!("{} {}", r.name, r.codec.name()));
            bars.insert(r.track_id, bar);
        }
        Self { multi, bars }
    }

    pub fn update(&self, p: &Progress) {
        if let Some(b) = self.bars.get(&p.track) {
            if let Some(t) = p.frames_total {
                b.set_length(t.max(p.frames_done));
            }
            b.set_position(p.frames_done);
            b.set_message(format!("{:.1} fps", p.fps));
        }
    }

    pub fn finish(&self, track: u32) {
        if let Some(b) = self.bars.get(&track) {
            b.finish();
        }
    }

    pub fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }
}
