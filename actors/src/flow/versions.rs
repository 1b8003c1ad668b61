//! Flow versions. A flow's record holds its draft at version `v`; publishing copies it into
//! an immutable release version `v` (kept forever, so executions and pinned DLQ replays of
//! old versions still find their flow) and the next edit of the draft becomes version `v+1`.
//! The live version of a flow is its latest *published* release; a release made only for an
//! environment is kept with status `draft` and runs only for `stage: <environment>`.

use sluice_storage::{FlowRecord, StorageError, Store};

/// The flow as it was at `version`: its release, or the draft when the draft is that version.
///
/// # Errors
/// Storage errors.
pub fn find(
    store: &Store,
    space: &str,
    tenant: &str,
    flow_id: &str,
    version: u32,
) -> Result<Option<FlowRecord>, StorageError> {
    if let Some(release) = store.flow_version(space, tenant, flow_id, version)? {
        return Ok(Some(release));
    }
    Ok(store
        .flow(space, tenant, flow_id)?
        .filter(|f| f.version == version))
}

/// The latest *published* release of a flow, if it was ever published (releases made only
/// for an environment are not published and do not count).
///
/// # Errors
/// Storage errors.
pub fn live(
    store: &Store,
    space: &str,
    tenant: &str,
    flow_id: &str,
) -> Result<Option<FlowRecord>, StorageError> {
    Ok(store
        .flow_versions(space, tenant, flow_id)?
        .into_iter()
        .rfind(|v| v.status == sluice_storage::FlowStatus::Live))
}
