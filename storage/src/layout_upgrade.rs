//! Upgrades of data directories written by earlier versions, run once by `Store::open`
//! before the committer starts (so nothing else writes meanwhile).
//!
//! Only what an older layout would make wrong is moved; records that read the same in both
//! layouts are left where they are.

use fjall::{Database, PersistMode};

use crate::codec::{decode, encode};
use crate::error::Result;
use crate::records::ExecutionRecord;
use crate::store::{Handles, Ks};

/// Moves the trigger and input of every open execution stored with its payload inline
/// (before `execution_payloads` existed) into `execution_payloads`, and rewrites its state
/// without them. Open executions are the only ones that change again, and a change writes the
/// state alone ([`crate::WriteSet::put_execution_state`]), which would otherwise drop an
/// inline payload. Finished executions keep theirs inline and read the same.
///
/// Returns how many executions were moved; one durable batch for all of them.
///
/// # Errors
/// Engine or decode errors.
pub(crate) fn split_open_execution_payloads(db: &Database, handles: &Handles) -> Result<usize> {
    let mut batch = db.batch().durability(Some(PersistMode::SyncData));
    let mut moved = 0;
    for guard in handles.get(Ks::ExecutionsOpen).iter() {
        let key = guard.key()?;
        let Some(bytes) = handles.get(Ks::Executions).get(&key)? else {
            continue;
        };
        let exec: ExecutionRecord = decode(&bytes)?;
        if exec.trigger_json.is_empty() {
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
        moved += 1;
    }
    if moved > 0 {
        batch.commit()?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
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
        }
    }

    #[tokio::test]
    async fn open_executions_stored_inline_keep_their_payload_through_a_state_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = exec("open", ExecutionStatus::Running);
        let done = exec("done", ExecutionStatus::Completed);
        {
            // The layout before the split: the whole record, payload inline, in `executions`.
            let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
            let mut w = WriteSet::new();
            for r in [&open, &done] {
                let key = keys::execution("sp", "t", &r.id);
                w.put(Ks::Executions, key.clone(), r).expect("put");
                if !r.status.is_terminal() {
                    w.ops.push(Op::Put(Ks::ExecutionsOpen, key, Vec::new()));
                }
            }
            store.commit(w).await.expect("commit");
        }
        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        assert_eq!(
            store.execution("sp", "t", "open").expect("get"),
            Some(open.clone())
        );
        assert_eq!(
            store.execution("sp", "t", "done").expect("get"),
            Some(done.clone())
        );
        let raw = |id: &str| -> ExecutionRecord {
            store
                .get(Ks::Executions, &keys::execution("sp", "t", id))
                .expect("get")
                .expect("found")
        };
        assert!(raw("open").trigger_json.is_empty(), "moved out");
        assert_eq!(raw("done").trigger_json, done.trigger_json, "left inline");

        let mut finished = open.clone();
        finished.status = ExecutionStatus::Completed;
        let mut w = WriteSet::new();
        w.put_execution_state(&finished).expect("put");
        store.commit(w).await.expect("commit");
        assert_eq!(
            store.execution("sp", "t", "open").expect("get"),
            Some(finished)
        );
    }
}
