//! The services' API through the router (no socket), on SQLite and on PostgreSQL, one module
//! per router: auth, catalog, playback and licences, origin, operations; each kind of bad
//! input beside the route it attacks.

#[path = "../../../crates/publish/tests/support/s3_server.rs"]
mod s3_server;
#[path = "../support/mod.rs"]
mod support;

mod harness;

mod auth;
mod catalog;
mod ops;
mod origin;
mod playback;
