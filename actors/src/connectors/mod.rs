//! Connectors as data (DESIGN.md, Connectors): the eleven built-in definitions, their
//! registry, and the pure parts of calling them — building a request from a definition and
//! an input, finding the next page, picking records and ids out of an answer. The I/O (HTTP
//! client, credentials, SMTP) lives in the binary behind [`crate::connector::ActionInvoker`].
//!
//! Discovery's CDM coverage comes from the CDM mappings; [`coverage`] is the hook that reads
//! them.

pub mod coverage;
pub mod def;
pub mod paging;
pub mod registry;
pub mod request;
pub mod select;

pub use def::{ActionDef, ConnectorDef, Operation, Pagination, Transport};
pub use registry::{Registry, registry};
