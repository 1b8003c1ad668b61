//! The record codec: every stored value is one schema-version byte followed by the record
//! encoded with bincode 2 (serde mode, standard configuration: little-endian, varint integers).
//!
//! The version byte lets a record kind evolve: a reader that meets an older version can
//! migrate it, and a reader that meets an unknown version fails loudly instead of
//! misreading bytes. Every record kind is at version [`SCHEMA_V1`] today.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Result, StorageError};

/// The first (and current) schema version of every record kind.
pub const SCHEMA_V1: u8 = 1;

/// A type stored as a value in one keyspace.
pub trait Record: Serialize + DeserializeOwned {
    /// Short name used in error messages (`"execution"`, `"outbox entry"`).
    const KIND: &'static str;
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `record` as `[SCHEMA_V1, bincode bytes…]`.
///
/// # Errors
/// [`StorageError::Encode`] when bincode refuses the value (it cannot, for the plain structs
/// stored here, but the error is surfaced rather than unwrapped).
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>> {
    let mut out = vec![SCHEMA_V1];
    bincode::serde::encode_into_std_write(record, &mut out, config()).map_err(|e| {
        StorageError::Encode {
            kind: R::KIND,
            reason: e.to_string(),
        }
    })?;
    Ok(out)
}

/// Decodes bytes written by [`encode`].
///
/// # Errors
/// [`StorageError::Decode`] for an empty value, an unknown schema version, bytes bincode cannot
/// read, or trailing bytes after the record.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R> {
    let fail = |reason: String| StorageError::Decode {
        kind: R::KIND,
        reason,
    };
    match bytes.split_first() {
        None => Err(fail("empty value".into())),
        Some((&SCHEMA_V1, body)) => {
            let (record, used) = bincode::serde::decode_from_slice(body, config())
                .map_err(|e| fail(e.to_string()))?;
            if used != body.len() {
                return Err(fail(format!("{} trailing bytes", body.len() - used)));
            }
            Ok(record)
        }
        Some((version, _)) => Err(fail(format!("unknown schema version {version}"))),
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
