//! The data directory's layout version, and the upgrades from earlier layouts, run by
//! `Store::open` before the committer starts (so nothing else writes meanwhile).
//!
//! The version lives in the `meta` keyspace ([`keys::META_LAYOUT_VERSION`], one byte). A
//! directory from before the key existed is layout 1. Opening a directory whose layout is
//! newer than [`LAYOUT_VERSION`] fails: an older binary would misread what it does not know
//! (binaries from before the key cannot check it: a directory opened by this version must
//! not be opened by an earlier one).

use fjall::{Database, PersistMode};

use crate::codec::{decode, encode};
use crate::error::{Result, StorageError};
use crate::keys;
use crate::records::ExecutionRecord;
use crate::store::{Handles, Ks};

/// The layout this version writes.
///
/// - 1: execution records whole in `executions`.
/// - 2: an execution's trigger and input in `execution_payloads`, written once; its state
///   in `executions` (finished executions from layout 1 keep theirs inline and read the same).
/// - 3: execution records at schema version 2, with their hop count and correlation id
///   (loop detection). Records of earlier layouts read with 0 hops and none (see
///   `ExecutionRecord`'s `Record` impl); nothing is rewritten, the version only keeps a
///   layout 2 binary from opening the directory and failing on the first newer execution
///   record it reads.
pub(crate) const LAYOUT_VERSION: u8 = 3;

/// Executions moved per durable batch by the layout 1 → 2 upgrade.
const MOVE_CHUNK: usize = 1024;

/// Brings the directory to [`LAYOUT_VERSION`]; returns how many records were moved.
///
/// # Errors
/// [`StorageError::Engine`] from fjall; [`StorageError::Decode`] for a layout newer than this
/// binary knows. A record that cannot be decoded is logged and left where it is.
pub(crate) fn upgrade(db: &Database, handles: &Handles) -> Result<usize> {
    let meta = handles.get(Ks::Meta);
    let found = match meta.get(keys::META_LAYOUT_VERSION)? {
        Some(bytes) => bytes.first().copied().unwrap_or(1),
        None => 1,
    };
    if found > LAYOUT_VERSION {
        return Err(StorageError::Decode {
            kind: "data directory",
            reason: format!(
                "layout {found} was written by a newer Sluice; this one reads up to layout \
                 {LAYOUT_VERSION}"
            ),
        });
    }
    let moved = if found < 2 {
        split_execution_payloads(db, handles)?
    } else {
        0
    };
    if found < LAYOUT_VERSION {
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(meta, keys::META_LAYOUT_VERSION, [LAYOUT_VERSION]);
        batch.commit()?;
    }
    Ok(moved)
}

/// Layout 1 → 2: moves the trigger and input of every unfinished execution stored with its
/// payload inline into `execution_payloads`, and rewrites its state without them. Unfinished
/// executions are the only ones that change again, and a change writes the state alone
/// ([`crate::WriteSet::put_execution_state`]), which would otherwise drop an inline payload.
/// Finished executions keep theirs inline and read the same.
///
/// Every record is read (not only those in the open-executions index, which older
/// directories may lack), once: the layout version recorded afterwards skips it at later
/// opens. Moves are committed in chunks of [`MOVE_CHUNK`]; each is atomic and a move already
/// made is skipped, so an upgrade interrupted by a crash resumes at the next open.
fn split_execution_payloads(db: &Database, handles: &Handles) -> Result<usize> {
    let mut moved = 0;
    let mut batch = db.batch().durability(Some(PersistMode::SyncData));
    let mut in_batch = 0;
    for guard in handles.get(Ks::Executions).iter() {
        let (key, bytes) = guard.into_inner()?;
        let exec: ExecutionRecord = match decode(&bytes) {
            Ok(exec) => exec,
            Err(e) => {
                // Left as it is: it reads (or fails to) as before, and one bad record must
                // not keep the whole directory from opening.
                tracing::warn!(error = %e, "execution record not moved by the layout upgrade");
                continue;
            }
        };
        if exec.status.is_terminal() || exec.trigger_json.is_empty() {
            continue;
        }
        batch.insert(
            handles.get(Ks::ExecutionPayloads),
            key.to_vec(),
            encode(&exec.payload())?,
        );
        batch.insert(
            handles.get(Ks::Executions),
            key.to_vec(),
            encode(&exec.state_only())?,
        );
        in_batch += 1;
        if in_batch == MOVE_CHUNK {
            batch.commit()?;
            moved += in_batch;
            in_batch = 0;
            batch = db.batch().durability(Some(PersistMode::SyncData));
        }
    }
    if in_batch > 0 {
        batch.commit()?;
        moved += in_batch;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::LAYOUT_VERSION;
    use crate::keys;
    use crate::records::{ExecutionRecord, ExecutionStatus};
    use crate::store::{Ks, Store, StoreOptions};
    use crate::write_set::{Op, WriteSet};

    fn exec(id: &str, status: ExecutionStatus) -> ExecutionRecord {
        ExecutionRecord {
            id: id.into(),
            space_id: "sp".into(),
            tenant_id: "t".into(),
            flow_id: "f".into(),
            flow_name: "f".into(),
            flow_version: 1,
            status,
            event_id: "e".into(),
            trigger_kind: "event".into(),
            trigger_json: format!(r#"{{"id":"{id}"}}"#),
            input_json: String::new(),
            created_at_ms: 1,
            started_at_ms: Some(2),
            finished_at_ms: None,
            error_json: None,
            priority: 2,
            attempt: 1,
            replay_of: None,
            idempotency_key: "k".into(),
            hops: 0,
            correlation_id: String::new(),
        }
    }

    /// Writes `records` as layout 1 did (whole, payload inline) and marks the directory
    /// layout 1; `indexed` also lists the unfinished ones in the open-executions index.
    async fn write_layout_1(dir: &std::path::Path, records: &[&ExecutionRecord], indexed: bool) {
        let store = Store::open(dir, StoreOptions::default()).expect("open");
        let mut w = WriteSet::new();
        for r in records {
            let key = keys::execution("sp", "t", &r.id);
            w.put(Ks::Executions, key.clone(), *r).expect("put");
            if indexed && !r.status.is_terminal() {
                w.ops.push(Op::Put(Ks::ExecutionsOpen, key, Vec::new()));
            }
        }
        w.delete(Ks::Meta, keys::META_LAYOUT_VERSION.to_vec());
        store.commit(w).await.expect("commit");
    }

    #[tokio::test]
    async fn unfinished_executions_stored_inline_keep_their_payload_through_a_state_change() {
        for indexed in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let open = exec("open", ExecutionStatus::Waiting);
            let done = exec("done", ExecutionStatus::Completed);
            write_layout_1(dir.path(), &[&open, &done], indexed).await;

            let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
            let read = |id: &str| store.execution("sp", "t", id).expect("get");
            assert_eq!(read("open"), Some(open.clone()));
            assert_eq!(read("done"), Some(done.clone()));
            let state = |id: &str| {
                store
                    .execution_state("sp", "t", id)
                    .expect("get")
                    .expect("found")
            };
            assert!(state("open").trigger_json.is_empty(), "moved out");
            assert_eq!(state("done").trigger_json, done.trigger_json, "left inline");

            let mut finished = open.clone();
            finished.status = ExecutionStatus::Completed;
            let mut w = WriteSet::new();
            w.put_execution_state(&finished).expect("put");
            store.commit(w).await.expect("commit");
            assert_eq!(read("open"), Some(finished), "indexed: {indexed}");
        }
    }

    #[tokio::test]
    async fn a_layout_newer_than_this_binary_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
            let mut w = WriteSet::new();
            w.ops.push(Op::Put(
                Ks::Meta,
                keys::META_LAYOUT_VERSION.to_vec(),
                vec![LAYOUT_VERSION + 1],
            ));
            store.commit(w).await.expect("commit");
        }
        let err = Store::open(dir.path(), StoreOptions::default())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("newer Sluice"), "{err}");
    }
}
