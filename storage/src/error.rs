//! Errors of the storage layer.

/// Everything that can go wrong reading or writing the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The LSM engine reported an error (I/O, corruption, recovery).
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    /// A record could not be encoded.
    #[error("encoding {kind} record: {reason}")]
    Encode {
        /// Record kind, e.g. `execution`.
        kind: &'static str,
        /// What bincode said.
        reason: String,
    },
    /// A stored record could not be decoded (unknown schema version or bad bytes).
    #[error("decoding {kind} record: {reason}")]
    Decode {
        /// Record kind, e.g. `execution`.
        kind: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A write failed (disk full, I/O error): the store refuses every write from then on,
    /// without retrying in a loop, until the process is restarted with the cause fixed.
    /// Everything acknowledged before stays durable.
    #[error("storage is unavailable for writes ({0}); free space or fix the disk, then restart")]
    Unavailable(String),
    /// The committer thread is gone (the store is shutting down or crashed).
    #[error("the storage committer has stopped")]
    CommitterGone,
    /// An identifier that cannot be used in a key (empty, too long, or containing NUL).
    #[error("invalid identifier {0:?}: use 1-128 bytes without NUL")]
    InvalidId(String),
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
