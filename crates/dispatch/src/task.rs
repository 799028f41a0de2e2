//! What crosses NATS: a unit to encode (a JetStream message on the work queue) and what a
//! worker reports about it (core NATS messages, one subject per unit).

use reel_encoder::EncodePlan;
use reel_units::{UnitRecord, UnitWork};
use serde::{Deserialize, Serialize};

/// The work-queue stream: one message per unit waiting or being encoded, removed when a
/// worker acknowledges it (finished, or failed for good).
pub const STREAM: &str = "REEL_UNITS";
/// The durable pull consumer every worker shares.
pub const CONSUMER: &str = "reel-workers";
/// Unit `KEY` is queued as `reel.units.KEY`: at most one message per unit, which the
/// coordinator looks up before queueing it again.
pub const UNIT_SUBJECTS: &str = "reel.units.*";
/// Workers report on unit `KEY` to `reel.reports.KEY`.
pub const REPORT_SUBJECTS: &str = "reel.reports.*";

pub fn unit_subject(key: &str) -> String {
    format!("reel.units.{key}")
}

pub fn report_subject(key: &str) -> String {
    format!("reel.reports.{key}")
}

/// The key of unit or report `subject`, when it is one of ours.
pub fn key_of(subject: &str) -> Option<&str> {
    let key = subject
        .strip_prefix("reel.reports.")
        .or_else(|| subject.strip_prefix("reel.units."))?;
    (key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())).then_some(key)
}

/// A unit as queued: everything a worker needs besides the object store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitTask {
    /// The unit's content address, which the worker checks by building the unit again.
    pub key: String,
    pub work: UnitWork,
    /// The title's plan cut to this unit; its source path is the coordinator's and is not
    /// used: the worker reads `source_object` instead.
    pub plan: EncodePlan,
    /// The source's SHA-256 (hex): its identity.
    pub source_sha256: String,
    /// Where the source is in the object store.
    pub source_object: String,
}

/// What a worker says about a unit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    Started {
        worker: String,
        attempt: u32,
    },
    /// Frames done per track so far (every few seconds while it encodes).
    Progress {
        worker: String,
        frames: Vec<(u32, u64)>,
        fps: f64,
    },
    /// The unit's files and record are in the object store.
    Done {
        worker: String,
        record: Box<UnitRecord>,
    },
    /// The attempt failed; the message goes back to the queue for another.
    Retrying {
        worker: String,
        attempt: u32,
        error: String,
    },
    /// The last attempt failed (or the unit cannot be run here at all): the unit is taken off
    /// the queue.
    Failed {
        worker: String,
        attempts: u32,
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_only_from_our_subjects() {
        let key = "0123456789abcdef0123456789abcdef";
        assert_eq!(key_of(&report_subject(key)), Some(key));
        assert_eq!(key_of(&unit_subject(key)), Some(key));
        assert_eq!(key_of("reel.reports.short"), None);
        assert_eq!(key_of("other.0123456789abcdef0123456789abcdef"), None);
        assert_eq!(
            key_of("reel.reports.0123456789abcdef0123456789abcdeg"),
            None
        );
    }

    #[test]
    fn a_report_round_trips_as_tagged_json() {
        let r = Report::Retrying {
            worker: "host-1".into(),
            attempt: 2,
            error: "stalled".into(),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""report":"retrying""#), "{json}");
        assert!(matches!(
            serde_json::from_str::<Report>(&json).unwrap(),
            Report::Retrying { attempt: 2, .. }
        ));
    }
}
