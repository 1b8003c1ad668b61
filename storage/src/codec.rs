//! The record codec: every stored value is one schema-version byte followed by the record
//! encoded with bincode 2 (serde mode, standard configuration: little-endian, varint integers).
//!
//! The version byte lets a record kind evolve: a reader that meets an older version migrates
//! it ([`Record::decode_older`]), and a reader that meets an unknown version fails loudly
//! instead of misreading bytes. Every record kind is at version [`SCHEMA_V1`] today except
//! executions, at [`SCHEMA_V2`] (they gained their hop count).

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Result, StorageError};

/// The first schema version of every record kind.
pub const SCHEMA_V1: u8 = 1;

/// The second schema version, for kinds that have changed once.
pub const SCHEMA_V2: u8 = 2;

/// A type stored as a value in one keyspace.
pub trait Record: Serialize + DeserializeOwned {
    /// Short name used in error messages (`"execution"`, `"outbox entry"`).
    const KIND: &'static str;

    /// The schema version this build writes, the first byte of every stored value.
    const VERSION: u8 = SCHEMA_V1;

    /// Reads a value this kind wrote at an older schema `version`; `body` is the value without
    /// its version byte. `None` when the kind never wrote that version (the default: no older
    /// versions).
    fn decode_older(_version: u8, _body: &[u8]) -> Option<Result<Self>> {
        None
    }
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `record` as `[R::VERSION, bincode bytes…]`.
///
/// # Errors
/// [`StorageError::Encode`] when bincode refuses the value (it cannot, for the plain structs
/// stored here, but the error is surfaced rather than unwrapped).
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>> {
    let mut out = vec![R::VERSION];
    bincode::serde::encode_into_std_write(record, &mut out, config()).map_err(|e| {
        StorageError::Encode {
            kind: R::KIND,
            reason: e.to_string(),
        }
    })?;
    Ok(out)
}

/// Decodes bytes written by [`encode`], at the kind's current version or (through
/// [`Record::decode_older`]) an older one.
///
/// # Errors
/// [`StorageError::Decode`] for an empty value, an unknown schema version, bytes bincode cannot
/// read, or trailing bytes after the record.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R> {
    match bytes.split_first() {
        None => Err(decode_error::<R>("empty value".into())),
        Some((&version, body)) if version == R::VERSION => decode_body::<R, R>(body),
        Some((&version, body)) => R::decode_older(version, body).unwrap_or_else(|| {
            Err(decode_error::<R>(format!(
                "unknown schema version {version}"
            )))
        }),
    }
}

/// Decodes one record's bincode bytes (a stored value without its version byte) as `T`,
/// reporting errors as `R`'s: the building block of [`Record::decode_older`].
///
/// # Errors
/// [`StorageError::Decode`] for bytes bincode cannot read, or trailing bytes after the record.
pub fn decode_body<R: Record, T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let (record, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| decode_error::<R>(e.to_string()))?;
    if used != body.len() {
        return Err(decode_error::<R>(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(record)
}

fn decode_error<R: Record>(reason: String) -> StorageError {
    StorageError::Decode {
        kind: R::KIND,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        a: u64,
        b: String,
        c: Option<Vec<u8>>,
    }
    impl Record for Sample {
        const KIND: &'static str = "sample";
    }

    #[test]
    fn round_trips_with_version_byte() {
        let s = Sample {
            a: 42,
            b: "x".into(),
            c: Some(vec![1, 2]),
        };
        let bytes = encode(&s).expect("encode");
        assert_eq!(bytes[0], SCHEMA_V1);
        assert_eq!(decode::<Sample>(&bytes).expect("decode"), s);
    }

    #[test]
    fn rejects_unknown_version_empty_and_trailing_bytes() {
        let mut bytes = encode(&Sample {
            a: 1,
            b: String::new(),
            c: None,
        })
        .expect("encode");
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<Sample>(&trailing).is_err());
        bytes[0] = 9;
        let err = decode::<Sample>(&bytes).expect_err("version 9");
        assert!(
            err.to_string().contains("unknown schema version 9"),
            "{err}"
        );
        assert!(decode::<Sample>(&[]).is_err());
    }
}
