//! `sluice-actors`: the runtime and the domain it runs.
//!
//! - [`pipeline`]: signature verification, idempotency keys, normalization, routing (pure);
//! - [`flow`]: the flow document and its save-time validation (pure);
//! - [`mapping`]: templates, JSONPath, type coercion and field mappings (pure);
//! - [`cdm`]: the Canonical Data Model, its JSON Schemas and the connectors' mappings (pure);
//! - [`engine`]: runs one execution, journaling each step through `sluice-storage`;
//! - [`runtime`]: the actors — root supervisor, tenant supervisors, outbox relay;
//! - [`connector`]: the trait through which the engine reaches the outside world;
//! - [`connectors`]: the built-in connector definitions and the pure parts of calling them;
//! - [`sync`]: ID maps, conflict strategies and echo suppression of the sync engine.
//! - [`dlq`]: dead letter queue items and replay.
//!
//! This crate knows nothing of HTTP servers; the binary wires it to one.

pub mod cdm;
pub mod connector;
pub mod connectors;
pub mod dlq;
pub mod engine;
pub mod flow;
pub mod ids;
pub mod json_depth;
pub mod limits;
pub mod mapping;
pub mod pipeline;
pub mod runtime;
pub mod schedule;
pub mod sync;
