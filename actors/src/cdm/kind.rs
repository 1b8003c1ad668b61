//! The entity names, typed records of any entity, JSON Schemas (draft 2020-12, generated
//! from the Rust types by `schemars`) and field lists.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::entities::{
    CdmContact, CdmFulfillment, CdmInventoryLevel, CdmInvoice, CdmOrder, CdmProduct,
};

/// One of the six entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// `CDMContact`.
    Contact,
    /// `CDMProduct`.
    Product,
    /// `CDMOrder`.
    Order,
    /// `CDMInvoice`.
    Invoice,
    /// `CDMInventoryLevel`.
    InventoryLevel,
    /// `CDMFulfillment`.
    Fulfillment,
}

impl EntityKind {
    /// All entities, in the reference's order.
    pub const ALL: [EntityKind; 6] = [
        EntityKind::Contact,
        EntityKind::Product,
        EntityKind::Order,
        EntityKind::Invoice,
        EntityKind::InventoryLevel,
        EntityKind::Fulfillment,
    ];

    /// The reference's name: `CDMContact`…
    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Contact => "CDMContact",
            EntityKind::Product => "CDMProduct",
            EntityKind::Order => "CDMOrder",
            EntityKind::Invoice => "CDMInvoice",
            EntityKind::InventoryLevel => "CDMInventoryLevel",
            EntityKind::Fulfillment => "CDMFulfillment",
        }
    }

    /// The entity named `name` (exactly as [`name`](Self::name) spells it).
    pub fn from_name(name: &str) -> Option<EntityKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The JSON Schema of the entity, with its nested types under `$defs`.
    pub fn schema(self) -> Value {
        fn of<T: JsonSchema>() -> Value {
            schemars::schema_for!(T).to_value()
        }
        match self {
            EntityKind::Contact => of::<CdmContact>(),
            EntityKind::Product => of::<CdmProduct>(),
            EntityKind::Order => of::<CdmOrder>(),
            EntityKind::Invoice => of::<CdmInvoice>(),
            EntityKind::InventoryLevel => of::<CdmInventoryLevel>(),
            EntityKind::Fulfillment => of::<CdmFulfillment>(),
        }
    }

    /// The entity's top-level fields other than `source`, in schema order: what a coverage
    /// score counts.
    pub fn fields(self) -> Vec<String> {
        self.schema()
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().filter(|k| *k != "source").cloned().collect())
            .unwrap_or_default()
    }
}

/// A typed record of any entity (boxed: the entities differ a lot in size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CdmEntity {
    /// A contact.
    Contact(Box<CdmContact>),
    /// A product.
    Product(Box<CdmProduct>),
    /// An order.
    Order(Box<CdmOrder>),
    /// An invoice.
    Invoice(Box<CdmInvoice>),
    /// An inventory level.
    InventoryLevel(Box<CdmInventoryLevel>),
    /// A fulfillment.
    Fulfillment(Box<CdmFulfillment>),
}

impl CdmEntity {
    /// Reads `doc` as a `kind` record: field names and types are checked (unknown fields,
    /// float amounts and bad currency codes are refused).
    ///
    /// # Errors
    /// The deserializer's message, naming the field.
    pub fn from_json(kind: EntityKind, doc: Value) -> Result<CdmEntity, serde_json::Error> {
        Ok(match kind {
            EntityKind::Contact => CdmEntity::Contact(Box::new(serde_json::from_value(doc)?)),
            EntityKind::Product => CdmEntity::Product(Box::new(serde_json::from_value(doc)?)),
            EntityKind::Order => CdmEntity::Order(Box::new(serde_json::from_value(doc)?)),
            EntityKind::Invoice => CdmEntity::Invoice(Box::new(serde_json::from_value(doc)?)),
            EntityKind::InventoryLevel => {
                CdmEntity::InventoryLevel(Box::new(serde_json::from_value(doc)?))
            }
            EntityKind::Fulfillment => {
                CdmEntity::Fulfillment(Box::new(serde_json::from_value(doc)?))
            }
        })
    }

    /// Which entity this is.
    pub fn kind(&self) -> EntityKind {
        match self {
            CdmEntity::Contact(_) => EntityKind::Contact,
            CdmEntity::Product(_) => EntityKind::Product,
            CdmEntity::Order(_) => EntityKind::Order,
            CdmEntity::Invoice(_) => EntityKind::Invoice,
            CdmEntity::InventoryLevel(_) => EntityKind::InventoryLevel,
            CdmEntity::Fulfillment(_) => EntityKind::Fulfillment,
        }
    }

    /// The record as JSON (camelCase).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_name_the_reference_fields() {
        // The reference's key fields, as discovery scores them.
        let key_fields = crate::connectors::coverage::CDM_KEY_FIELDS;
        assert_eq!(key_fields.len(), 6);
        for (name, want) in key_fields {
            let kind = EntityKind::from_name(name).expect("a CDM entity");
            let fields = kind.fields();
            for f in *want {
                assert!(
                    fields.iter().any(|x| x == f),
                    "{} lacks {f}: {fields:?}",
                    kind.name()
                );
            }
            let schema = kind.schema();
            assert_eq!(schema["title"], kind.name());
            assert_eq!(EntityKind::from_name(kind.name()), Some(kind));
        }
        let order = EntityKind::Order.schema();
        let money = &order["$defs"]["Money"];
        assert_eq!(
            money["properties"]["amount"]["$ref"], "#/$defs/DecimalString",
            "{money}"
        );
        assert_eq!(order["$defs"]["DecimalString"]["type"], "string");
        assert_eq!(EntityKind::from_name("CDMNope"), None);
    }
}
