//! The event pipeline's pure logic: headers, signature verification, idempotency keys,
//! normalization and routing. No I/O here; the HTTP front and the actors call these.

pub mod headers;
pub mod hops;
pub mod idempotency;
pub mod normalize;
pub mod router;
pub mod signature;
pub mod submit;

pub use headers::Headers;
pub use normalize::{NormalizeError, NormalizedEvent, normalize};
