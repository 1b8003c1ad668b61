//! `idMap` upserts of action steps: before the call, look up whether the source record is
//! already linked to a record of the target connector (then call the entity's update action
//! on that id instead of create); after a successful call, record the link both ways.

use serde_json::Value;
use sluice_storage::StorageError;

use crate::flow::StepSpec;
use crate::mapping::template::render_value;
use crate::sync::{IdMaps, RecordRef};

/// What an `idMap` step will do: the source record, the target entity, the link found (if
/// any) and the update action used when it exists.
pub struct Upsert {
    source: RecordRef,
    target_system: String,
    target_entity: String,
    /// The linked target record, when the source was seen before.
    pub existing: Option<RecordRef>,
    /// The entity's update action (used when `existing` is set).
    pub update_action: String,
}

/// Plans the upsert of `step` (calling `connector.action`), or `None` without `idMap`.
///
/// # Errors
/// A message when the action has no entity or update action, or the id renders to nothing.
pub fn plan(
    id_maps: &IdMaps,
    space: &str,
    tenant: &str,
    step: &StepSpec,
    ctx: &Value,
    connector: &str,
    action: &str,
) -> Result<Option<Upsert>, String> {
    let Some(spec) = &step.id_map else {
        return Ok(None);
    };
    let (def, act) = crate::connectors::registry()
        .action(connector, action)
        .ok_or_else(|| format!("unknown action {connector}.{action}"))?;
    let entity = act
        .entity
        .as_deref()
        .and_then(|e| def.entities.iter().find(|d| d.name == e))
        .ok_or_else(|| format!("{connector}.{action} has no entity for idMap"))?;
    let update_action = entity
        .update
        .clone()
        .ok_or_else(|| format!("{connector}.{} has no update action", entity.name))?;
    let id = render_value(&Value::String(spec.id.clone()), ctx)
        .ok()
        .as_ref()
        .and_then(crate::connectors::select::id_text)
        .ok_or_else(|| format!("idMap.id {:?} rendered to no id", spec.id))?;
    let source = RecordRef {
        system: spec.system.clone(),
        entity: spec.entity.clone(),
        id,
    };
    let existing = id_maps
        .lookup(space, tenant, &source, connector)
        .map_err(|e| e.to_string())?;
    Ok(Some(Upsert {
        source,
        target_system: connector.to_owned(),
        target_entity: entity.name.clone(),
        existing,
        update_action,
    }))
}

/// Records the link between the source record and the target the call created or updated.
///
/// # Errors
/// Storage errors.
pub async fn link(
    id_maps: &IdMaps,
    space: &str,
    tenant: &str,
    u: &Upsert,
    output: &Value,
) -> Result<(), StorageError> {
    let id = u.existing.as_ref().map(|e| e.id.clone()).or_else(|| {
        output
            .get("id")
            .and_then(crate::connectors::select::id_text)
    });
    let Some(id) = id else {
        tracing::warn!("idMap: the action answered without an id; no link recorded");
        return Ok(());
    };
    let target = RecordRef {
        system: u.target_system.clone(),
        entity: u.target_entity.clone(),
        id,
    };
    id_maps.link(space, tenant, &u.source, &target).await
}
