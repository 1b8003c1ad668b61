//! The sync engine (DESIGN.md, Sync engine): keeps one entity in step between two
//! connectors.
//!
//! - [`id_map`]: bidirectional ID maps, persisted (both directions in one batch) and cached;
//! - [`hash`]: canonical content hashes that recognise the engine's own writes coming back;
//! - [`conflict`]: the pure decision for one record — unchanged, write, converge or conflict —
//!   under `source_wins`, `target_wins`, `last_write_wins`, `merge`, `manual`;
//! - [`runner`]: applies that decision through the connectors and persists the record's
//!   state, links and conflicts atomically.

pub mod conflict;
pub mod hash;
pub mod id_map;
pub mod runner;

pub use conflict::{Strategy, reconcile};
pub use id_map::{IdMaps, RecordRef};
pub use runner::{Applied, Change, Resolution, SyncError, SyncRunner};
