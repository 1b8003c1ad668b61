//! `sluice-storage`: the only crate that touches the database.
//!
//! One fjall `Database` lives in the data directory, with one keyspace per kind of record
//! ([`Ks`]). Keys are built in [`keys`] (identifiers `0x00`-terminated, integers big-endian,
//! every tenant-owned key prefixed by its tenant); values are encoded in [`codec`] (one
//! schema-version byte, then bincode 2). Every write goes through the group [`committer`],
//! which persists before it answers.
//!
//! ```no_run
//! # async fn demo() -> sluice_storage::Result<()> {
//! use sluice_storage::{Store, StoreOptions, TenantRecord, WriteSet};
//! let store = Store::open("./sluice-data", StoreOptions::default())?;
//! let mut writes = WriteSet::new();
//! writes.put_tenant(&TenantRecord { space_id: "sp".into(), id: "acme".into(), created_at_ms: 0 })?;
//! store.commit(writes).await?; // on disk when this returns
//! assert!(store.tenant("sp", "acme")?.is_some());
//! # Ok(()) }
//! ```
//!
//! It is not: a query engine, a cache of live state (actors own that), or aware of HTTP or
//! actors.

pub mod codec;
pub mod committer;
mod error;
mod flow_records;
mod flow_store;
pub mod keys;
mod layout_upgrade;
mod poll_records;
mod recent_keys;
mod records;
mod retention;
mod store;
mod write_set;

pub use committer::{Durability, IngestOutcome};
pub use error::{Result, StorageError};
pub use flow_records::*;
pub use poll_records::*;
pub use records::*;
pub use retention::Pruned;
pub use store::{EngineStats, Ks, Store, StoreOptions};
pub use write_set::WriteSet;
