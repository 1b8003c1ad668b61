//! Built-in connectors' mappings to and from the CDM, kept as data in `mappings/*.json`:
//!
//! ```json
//! {"connector": "stripe", "description": "…",
//!  "entities": {"CDMInvoice": {"toCdm": {<field mapping>}, "fromCdm": {<field mapping>}}}}
//! ```
//!
//! A `toCdm` mapping reads the provider's native record (its context is the record itself:
//! `$.id`, `{{ currency }}`) and writes CDM fields; a `fromCdm` mapping reads a CDM record and
//! writes the provider's shape for its create/update calls. Both use the field-mapping
//! language of [`field_map`](crate::mapping::field_map). The coverage score of a connector
//! for an entity is the share of the entity's fields (see
//! [`EntityKind::fields`]) that its `toCdm` mapping fills.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::kind::{CdmEntity, EntityKind};
use crate::mapping::field_map::{FieldMap, MappingErrors};

const SOURCES: [(&str, &str); 5] = [
    ("shopify", include_str!("mappings/shopify.json")),
    ("stripe", include_str!("mappings/stripe.json")),
    ("github", include_str!("mappings/github.json")),
    ("xero", include_str!("mappings/xero.json")),
    ("quickbooks", include_str!("mappings/quickbooks.json")),
];

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CdmError {
    /// No built-in connector has that name.
    #[error("unknown connector {0:?}")]
    UnknownConnector(String),
    /// The connector has no mapping for that entity in that direction.
    #[error("connector {connector:?} has no {direction} mapping for {entity}")]
    NoMapping {
        /// Connector name.
        connector: String,
        /// Entity name.
        entity: &'static str,
        /// `toCdm` or `fromCdm`.
        direction: &'static str,
    },
    /// Fields failed to evaluate (bad dates, amounts, unknown enum values…).
    #[error("{0}")]
    Mapping(MappingErrors),
    /// The mapped document is not a valid entity (a bad currency code, a wrong type).
    #[error("mapped record is not a valid {entity}: {message}")]
    Invalid {
        /// Entity name.
        entity: &'static str,
        /// The deserializer's message.
        message: String,
    },
    /// A built-in mapping file does not parse (a bug caught by the tests).
    #[error("built-in mapping {0}")]
    Builtin(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorFile {
    connector: String,
    #[allow(dead_code)]
    description: String,
    entities: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EntityMappings {
    to_cdm: Map<String, Value>,
    #[serde(default)]
    from_cdm: Option<Map<String, Value>>,
}

/// A connector's compiled mappings for one entity.
struct Compiled {
    kind: EntityKind,
    to_cdm: FieldMap,
    from_cdm: Option<FieldMap>,
}

type Registry = Vec<(String, Vec<Compiled>)>;

fn compile(name: &str, text: &str) -> Result<(String, Vec<Compiled>), String> {
    let file: ConnectorFile =
        serde_json::from_str(text).map_err(|e| format!("{name}.json: {e}"))?;
    if file.connector != name {
        return Err(format!("{name}.json names connector {:?}", file.connector));
    }
    let mut out = Vec::new();
    for (entity, spec) in file.entities {
        let kind = EntityKind::from_name(&entity)
            .ok_or_else(|| format!("{name}.json: unknown entity {entity:?}"))?;
        let spec: EntityMappings =
            serde_json::from_value(spec).map_err(|e| format!("{name}.json {entity}: {e}"))?;
        let to_cdm = FieldMap::compile(&spec.to_cdm)
            .map_err(|e| format!("{name}.json {entity} toCdm: {e}"))?;
        let from_cdm = match &spec.from_cdm {
            Some(m) => Some(
                FieldMap::compile(m).map_err(|e| format!("{name}.json {entity} fromCdm: {e}"))?,
            ),
            None => None,
        };
        out.push(Compiled {
            kind,
            to_cdm,
            from_cdm,
        });
    }
    Ok((name.to_owned(), out))
}

fn registry() -> Result<&'static Registry, CdmError> {
    static REGISTRY: OnceLock<Result<Registry, String>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| SOURCES.iter().map(|(n, t)| compile(n, t)).collect())
        .as_ref()
        .map_err(|e| CdmError::Builtin(e.clone()))
}

fn find(connector: &str, kind: EntityKind) -> Result<Option<&'static Compiled>, CdmError> {
    let reg = registry()?;
    let (_, entities) = reg
        .iter()
        .find(|(n, _)| n == connector)
        .ok_or_else(|| CdmError::UnknownConnector(connector.to_owned()))?;
    Ok(entities.iter().find(|c| c.kind == kind))
}

/// Names of the connectors that have CDM mappings.
pub fn connectors() -> Vec<&'static str> {
    SOURCES.iter().map(|(n, _)| *n).collect()
}

/// Maps a provider's native `record` (for Stripe events, `data.object`; for Shopify
/// webhooks, the body) to the `kind` entity.
///
/// # Errors
/// [`CdmError::UnknownConnector`], [`CdmError::NoMapping`], [`CdmError::Mapping`] with every
/// failing field, or [`CdmError::Invalid`] when the result breaks the entity's schema.
pub fn to_cdm(connector: &str, kind: EntityKind, record: &Value) -> Result<CdmEntity, CdmError> {
    let compiled = find(connector, kind)?.ok_or(CdmError::NoMapping {
        connector: connector.to_owned(),
        entity: kind.name(),
        direction: "toCdm",
    })?;
    let mut doc = compiled.to_cdm.apply(record).map_err(CdmError::Mapping)?;
    prune_nulls(&mut doc);
    CdmEntity::from_json(kind, doc).map_err(|e| CdmError::Invalid {
        entity: kind.name(),
        message: e.to_string(),
    })
}

/// Maps a CDM record to the connector's native shape for writing.
///
/// # Errors
/// [`CdmError::NoMapping`] when the connector does not write that entity;
/// [`CdmError::Mapping`] for fields that fail.
pub fn from_cdm(connector: &str, entity: &CdmEntity) -> Result<Value, CdmError> {
    let kind = entity.kind();
    let no_mapping = || CdmError::NoMapping {
        connector: connector.to_owned(),
        entity: kind.name(),
        direction: "fromCdm",
    };
    let compiled = find(connector, kind)?.ok_or_else(no_mapping)?;
    let map = compiled.from_cdm.as_ref().ok_or_else(no_mapping)?;
    let mut doc = map.apply(&entity.to_json()).map_err(CdmError::Mapping)?;
    prune_nulls(&mut doc);
    Ok(doc)
}

/// The CDM fields (top-level names) that `connector`'s `toCdm` mapping of the entity named
/// `cdm` fills; `None` when there is no such mapping. What discovery's coverage is built on.
pub fn mapped_fields(connector: &str, cdm: &str) -> Option<Vec<String>> {
    let kind = EntityKind::from_name(cdm)?;
    let compiled = find(connector, kind).ok()??;
    Some(
        compiled
            .to_cdm
            .top_level_targets()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    )
}

/// How much of one entity a connector's mapping fills.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// Entity name (`CDMOrder`).
    pub entity: &'static str,
    /// `covered / all fields`, 0.0 to 1.0, rounded to two decimals.
    pub score: f64,
    /// Entity fields the `toCdm` mapping fills.
    pub covered: Vec<String>,
    /// Entity fields it leaves empty.
    pub missing: Vec<String>,
    /// True when the connector can also write the entity (`fromCdm`).
    pub writes: bool,
}

/// The coverage of every entity `connector` maps, in the reference's entity order.
///
/// # Errors
/// [`CdmError::UnknownConnector`].
pub fn coverage(connector: &str) -> Result<Vec<Coverage>, CdmError> {
    let mut out = Vec::new();
    for kind in EntityKind::ALL {
        let Some(compiled) = find(connector, kind)? else {
            continue;
        };
        let targets = compiled.to_cdm.top_level_targets();
        let fields = kind.fields();
        let (covered, missing): (Vec<String>, Vec<String>) = fields
            .iter()
            .cloned()
            .partition(|f| targets.contains(&f.as_str()));
        let share = covered.len() as f64 / fields.len().max(1) as f64;
        out.push(Coverage {
            entity: kind.name(),
            score: (share * 100.0).round() / 100.0,
            covered,
            missing,
            writes: compiled.from_cdm.is_some(),
        });
    }
    Ok(out)
}

/// Removes `null` members from objects, recursively (absent and `null` mean the same in
/// the CDM; this lets list fields with no source default to empty).
fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_mappings_compile_and_report_coverage() {
        registry().expect("every built-in mapping compiles");
        for c in connectors() {
            let cov = coverage(c).expect("coverage");
            assert!(!cov.is_empty(), "{c}");
            for e in &cov {
                assert!(
                    e.score > 0.0 && e.score <= 1.0,
                    "{c} {}: {}",
                    e.entity,
                    e.score
                );
                assert_eq!(
                    e.covered.len() + e.missing.len(),
                    EntityKind::from_name(e.entity).map_or(0, |k| k.fields().len())
                );
            }
        }
        assert!(matches!(
            coverage("nope"),
            Err(CdmError::UnknownConnector(_))
        ));
        let gh = to_cdm("github", EntityKind::Invoice, &json!({}));
        assert!(matches!(gh, Err(CdmError::NoMapping { .. })), "{gh:?}");
    }
}
