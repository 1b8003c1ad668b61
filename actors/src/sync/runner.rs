//! Applies observed changes of a sync pair: reconcile (see [`super::conflict`]), write the
//! winning content through the connectors' create/update actions, link the ids, and persist
//! the record's sync state — state, links and any conflict in one atomic batch.
//!
//! Writes happen before the state is committed; a crash in between re-applies the change,
//! and the calls carry an idempotency key derived from (pair, record, content hash) so a
//! provider that honours `Idempotency-Key` applies it once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_storage::{
    StorageError, Store, SyncConflictRecord, SyncPairRecord, SyncStateRecord, WriteSet,
};

use super::conflict::{Known, Observed, Outcome, Strategy, effective_fields, reconcile, three_way};
use super::hash::content_hash;
use super::id_map::{IdMaps, RecordRef};
use crate::connector::{ActionCall, ActionError, ActionInvoker};
use crate::connectors::registry;
use crate::connectors::select::id_text;
use crate::ids::now_ms;

/// Time limit of one write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// One side's observed record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The record's id on that side.
    pub id: String,
    /// The record.
    pub record: Value,
    /// When it changed there, Unix ms.
    pub updated_at_ms: u64,
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing changed since last time (a repeat, or an echo of the engine's own write).
    Unchanged,
    /// Both sides already agree.
    Converged,
    /// Content written.
    Written {
        /// Source id of the record.
        source_id: String,
        /// Target id of the record.
        target_id: String,
        /// Written to the source.
        to_source: bool,
        /// Written to the target.
        to_target: bool,
        /// The content written.
        value: Value,
    },
    /// Flagged for review (`manual`), or still waiting on an open conflict.
    Conflict(String),
}

/// Why a change could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A connector call failed.
    #[error("{action}: {error}")]
    Action {
        /// `connector.action`.
        action: String,
        /// The failure.
        error: ActionError,
    },
    /// The pair or the request cannot work (unknown entity, no create action…).
    #[error("{0}")]
    Invalid(String),
}

/// How a conflict is resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Keep the source's version.
    Source,
    /// Keep the target's version.
    Target,
    /// Field-level merge (later side wins clashes).
    Merge,
    /// A value given by the reviewer.
    Custom(Value),
}

/// Applies changes and resolutions for every pair of every tenant.
#[derive(Clone)]
pub struct SyncRunner {
    store: Store,
    invoker: Arc<dyn ActionInvoker>,
    maps: IdMaps,
}

enum SideOf {
    Source,
    Target,
}

impl SyncRunner {
    /// A runner over `store`, writing through `invoker`.
    pub fn new(store: Store, invoker: Arc<dyn ActionInvoker>, maps: IdMaps) -> Self {
        Self {
            store,
            invoker,
            maps,
        }
    }

    /// Applies what was observed on either or both sides of `pair`.
    ///
    /// # Errors
    /// [`SyncError`]; nothing is persisted when a write fails.
    pub async fn apply(
        &self,
        space: &str,
        tenant: &str,
        pair: &SyncPairRecord,
        source: Option<Change>,
        target: Option<Change>,
    ) -> Result<Applied, SyncError> {
        let strategy = Strategy::from_str(&pair.strategy).map_err(SyncError::Invalid)?;
        let source_id = match (&source, &target) {
            (Some(s), _) => Some(s.id.clone()),
            (None, Some(t)) => self
                .maps
                .lookup(
                    space,
                    tenant,
                    &target_ref(pair, &t.id),
                    &pair.source_connector,
                )?
                .map(|r| r.id),
            (None, None) => return Ok(Applied::Unchanged),
        };
        let state = match &source_id {
            Some(id) => self.store.sync_state(space, tenant, &pair.id, id)?,
            None => None,
        };
        if let Some(open) = state.as_ref().and_then(|s| s.open_conflict.clone()) {
            return Ok(Applied::Conflict(open));
        }
        let known = state.as_ref().map(|s| Known {
            base: serde_json::from_str(&s.base_json).unwrap_or(Value::Null),
            source_hash: s.source_hash.clone(),
            target_hash: s.target_hash.clone(),
        });
        let observe = |c: &Option<Change>| {
            c.as_ref().map(|c| Observed {
                record: c.record.clone(),
                updated_at_ms: c.updated_at_ms,
            })
        };
        let (s_obs, t_obs) = (observe(&source), observe(&target));
        let outcome = reconcile(
            strategy,
            &pair.fields,
            known.as_ref(),
            s_obs.as_ref(),
            t_obs.as_ref(),
        );
        let mut target_id = state
            .as_ref()
            .and_then(|s| s.target_id.clone())
            .or_else(|| target.as_ref().map(|t| t.id.clone()));
        if target_id.is_none()
            && let Some(sid) = &source_id
        {
            target_id = self
                .maps
                .lookup(
                    space,
                    tenant,
                    &source_ref(pair, sid),
                    &pair.target_connector,
                )?
                .map(|r| r.id);
        }
        let times = (
            source.as_ref().map_or(0, |c| c.updated_at_ms),
            target.as_ref().map_or(0, |c| c.updated_at_ms),
        );
        match outcome {
            Outcome::Unchanged => Ok(Applied::Unchanged),
            Outcome::Converged(value) => {
                if let (Some(sid), Some(tid)) = (source_id, target_id) {
                    self.commit_state(
                        space, tenant, pair, &sid, &tid, &value, times, "engine", None,
                    )
                    .await?;
                }
                Ok(Applied::Converged)
            }
            Outcome::Conflict => {
                let sid = source_id.ok_or_else(|| {
                    SyncError::Invalid("a conflict needs the source record".into())
                })?;
                let now = now_ms();
                let conflict = SyncConflictRecord {
                    id: format!("cfl_{}", uuid::Uuid::now_v7().simple()),
                    pair_id: pair.id.clone(),
                    source_id: sid.clone(),
                    target_id: target_id.clone(),
                    source_json: json_text(source.as_ref().map(|c| &c.record)),
                    target_json: json_text(target.as_ref().map(|c| &c.record)),
                    base_json: state
                        .as_ref()
                        .map_or_else(|| "null".into(), |s| s.base_json.clone()),
                    source_updated_ms: times.0,
                    target_updated_ms: times.1,
                    status: "open".into(),
                    resolution: None,
                    resolved_json: None,
                    created_at_ms: now,
                    resolved_at_ms: None,
                };
                let mut st = state.unwrap_or_else(|| empty_state(pair, &sid));
                st.open_conflict = Some(conflict.id.clone());
                st.target_id = target_id;
                st.updated_at_ms = now;
                let mut w = WriteSet::new();
                w.put_sync_state(space, tenant, &st)?;
                w.put_sync_conflict(space, tenant, &conflict)?;
                self.store.commit(w).await?;
                metrics::counter!("sluice_sync_conflicts_total").increment(1);
                Ok(Applied::Conflict(conflict.id))
            }
            Outcome::Write {
                value,
                to_source,
                to_target,
            } => {
                self.write_both(
                    space, tenant, pair, source_id, target_id, value, to_source, to_target, times,
                    None,
                )
                .await
            }
        }
    }

    /// Resolves an open conflict: writes the chosen content to both sides where it differs
    /// and closes the conflict.
    ///
    /// # Errors
    /// [`SyncError::Invalid`] for an unknown or already resolved conflict; write failures.
    pub async fn resolve(
        &self,
        space: &str,
        tenant: &str,
        pair: &SyncPairRecord,
        conflict_id: &str,
        resolution: Resolution,
    ) -> Result<Applied, SyncError> {
        let mut conflict = self
            .store
            .sync_conflicts(space, tenant, &pair.id)?
            .into_iter()
            .find(|c| c.id == conflict_id)
            .ok_or_else(|| SyncError::Invalid(format!("no conflict {conflict_id:?}")))?;
        if conflict.status != "open" {
            return Err(SyncError::Invalid(format!(
                "conflict {conflict_id:?} is already resolved"
            )));
        }
        let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
        let (s, t, b) = (
            parse(&conflict.source_json),
            parse(&conflict.target_json),
            parse(&conflict.base_json),
        );
        let (name, value) = match resolution {
            Resolution::Source => ("source", s.clone()),
            Resolution::Target => ("target", t.clone()),
            Resolution::Merge => (
                "merge",
                three_way(
                    &b,
                    &s,
                    &t,
                    conflict.source_updated_ms >= conflict.target_updated_ms,
                ),
            ),
            Resolution::Custom(v) => ("custom", v),
        };
        let fields = effective_fields(&pair.fields, None);
        let value = super::conflict::project(&value, &fields);
        let h = |v: &Value| content_hash(v, &fields);
        conflict.status = "resolved".into();
        conflict.resolution = Some(name.into());
        conflict.resolved_json = Some(value.to_string());
        conflict.resolved_at_ms = Some(now_ms());
        let to_source = h(&value) != h(&s);
        let to_target = h(&value) != h(&t);
        self.write_both(
            space,
            tenant,
            pair,
            Some(conflict.source_id.clone()),
            conflict.target_id.clone(),
            value,
            to_source,
            to_target,
            (conflict.source_updated_ms, conflict.target_updated_ms),
            Some(conflict),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_both(
        &self,
        space: &str,
        tenant: &str,
        pair: &SyncPairRecord,
        mut source_id: Option<String>,
        mut target_id: Option<String>,
        value: Value,
        to_source: bool,
        to_target: bool,
        times: (u64, u64),
        closing: Option<SyncConflictRecord>,
    ) -> Result<Applied, SyncError> {
        if to_target || target_id.is_none() {
            target_id = Some(
                self.write(
                    tenant,
                    space,
                    pair,
                    SideOf::Target,
                    target_id.as_deref(),
                    &value,
                )
                .await?,
            );
        }
        if to_source || source_id.is_none() {
            source_id = Some(
                self.write(
                    tenant,
                    space,
                    pair,
                    SideOf::Source,
                    source_id.as_deref(),
                    &value,
                )
                .await?,
            );
        }
        let (Some(sid), Some(tid)) = (source_id, target_id) else {
            return Err(SyncError::Invalid("write returned no id".into()));
        };
        let writer = match (to_source, to_target) {
            (true, true) => "engine",
            (true, false) => "target",
            _ => "source",
        };
        self.commit_state(
            space, tenant, pair, &sid, &tid, &value, times, writer, closing,
        )
        .await?;
        Ok(Applied::Written {
            source_id: sid,
            target_id: tid,
            to_source,
            to_target,
            value,
        })
    }

    /// Creates or updates the record on one side; returns its id there.
    async fn write(
        &self,
        tenant: &str,
        space: &str,
        pair: &SyncPairRecord,
        side: SideOf,
        id: Option<&str>,
        value: &Value,
    ) -> Result<String, SyncError> {
        let (connector, entity, credential) = match side {
            SideOf::Source => (
                &pair.source_connector,
                &pair.source_entity,
                &pair.source_credential,
            ),
            SideOf::Target => (
                &pair.target_connector,
                &pair.target_entity,
                &pair.target_credential,
            ),
        };
        let def = registry()
            .get(connector)
            .and_then(|c| c.entities.iter().find(|e| &e.name == entity))
            .ok_or_else(|| SyncError::Invalid(format!("{connector} has no entity {entity:?}")))?;
        let (action, input) = match id {
            Some(id) => (
                def.update.clone().ok_or_else(|| {
                    SyncError::Invalid(format!("{connector}.{entity} has no update action"))
                })?,
                json!({"id": id, "body": value}),
            ),
            None => (
                def.create.clone().ok_or_else(|| {
                    SyncError::Invalid(format!("{connector}.{entity} has no create action"))
                })?,
                json!({"body": value}),
            ),
        };
        let key_material = format!(
            "{}\0{}\0{}\0{}",
            pair.id,
            connector,
            id.unwrap_or(""),
            value
        );
        let call = ActionCall {
            connector: connector.clone(),
            action: action.clone(),
            input,
            idempotency_key: hex::encode(&Sha256::digest(key_material.as_bytes())[..16]),
            timeout: WRITE_TIMEOUT,
            space: space.to_owned(),
            tenant: tenant.to_owned(),
            credential: credential.clone(),
            lineage: Default::default(),
            execution_id: None,
        };
        let output = self
            .invoker
            .invoke(call)
            .await
            .map_err(|error| SyncError::Action {
                action: format!("{connector}.{action}"),
                error,
            })?;
        match id {
            Some(id) => Ok(id.to_owned()),
            None => output.get("id").and_then(id_text).ok_or_else(|| {
                SyncError::Invalid(format!("{connector}.{action} answered without an id"))
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_state(
        &self,
        space: &str,
        tenant: &str,
        pair: &SyncPairRecord,
        source_id: &str,
        target_id: &str,
        value: &Value,
        times: (u64, u64),
        writer: &str,
        closing: Option<SyncConflictRecord>,
    ) -> Result<(), SyncError> {
        let fields = effective_fields(&pair.fields, None);
        let hash = content_hash(value, &fields);
        let state = SyncStateRecord {
            pair_id: pair.id.clone(),
            source_id: source_id.to_owned(),
            target_id: Some(target_id.to_owned()),
            base_json: value.to_string(),
            source_hash: hash.clone(),
            target_hash: hash,
            source_updated_ms: times.0,
            target_updated_ms: times.1,
            last_writer: writer.to_owned(),
            open_conflict: None,
            updated_at_ms: now_ms(),
        };
        let (a, b) = (source_ref(pair, source_id), target_ref(pair, target_id));
        let mut w = WriteSet::new();
        w.put_sync_state(space, tenant, &state)?;
        IdMaps::stage_link(&mut w, space, tenant, &a, &b)?;
        if let Some(c) = &closing {
            w.put_sync_conflict(space, tenant, c)?;
        }
        self.store.commit(w).await?;
        self.maps.remember(space, tenant, &a, &b);
        Ok(())
    }
}

fn source_ref(pair: &SyncPairRecord, id: &str) -> RecordRef {
    RecordRef {
        system: pair.source_connector.clone(),
        entity: pair.source_entity.clone(),
        id: id.to_owned(),
    }
}

fn target_ref(pair: &SyncPairRecord, id: &str) -> RecordRef {
    RecordRef {
        system: pair.target_connector.clone(),
        entity: pair.target_entity.clone(),
        id: id.to_owned(),
    }
}

fn json_text(v: Option<&Value>) -> String {
    v.map_or_else(|| "null".into(), Value::to_string)
}

fn empty_state(pair: &SyncPairRecord, source_id: &str) -> SyncStateRecord {
    SyncStateRecord {
        pair_id: pair.id.clone(),
        source_id: source_id.to_owned(),
        target_id: None,
        base_json: "null".into(),
        source_hash: String::new(),
        target_hash: String::new(),
        source_updated_ms: 0,
        target_updated_ms: 0,
        last_writer: String::new(),
        open_conflict: None,
        updated_at_ms: 0,
    }
}
