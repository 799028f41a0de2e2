//! A title as work units. The video is cut into chunks on segment boundaries ([`chunk`]);
//! each chunk is one unit, encoded for every rung from one decode, and the audio is one unit
//! for the whole title ([`unit`]). A unit's files are named by a hash of everything that
//! decides them and kept, with a journal, in a [`UnitStore`], so a run that dies loses only
//! the units in flight and the next run reuses every finished one. [`ChunkedEncode`] runs the
//! missing units on a local pool ([`pool`]) and stitches the outputs back into the event
//! stream a whole-title encode gives ([`stitch`]).

pub mod chunk;
mod error;
pub mod pool;
mod stitch;
mod store;
pub mod unit;

pub use chunk::{
    chunk_frames, chunks, lead_in_frames, segment_frames, DEFAULT_CHUNK_SECONDS, LEAD_IN_SECONDS,
};
pub use error::UnitError;
pub use pool::{
    release_freed_memory, units_at_once, LocalWorkers, PoolMsg, RunningUnits, Workers, ATTEMPTS,
};
pub use stitch::{ChunkEvent, ChunkedEncode, ChunkedOptions, UnitCounts, UnitEvent};
pub use store::{Draft, UnitOutput, UnitPictures, UnitRecord, UnitStore};
pub use unit::{audio_unit, run_unit, title_units, Unit, UnitWork};
