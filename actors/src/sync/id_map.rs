//! Bidirectional ID maps: record `id` of `entity` in `system` ↔ record of another system.
//! Persisted in the `id_maps` keyspace (both directions in one atomic batch) and cached in
//! memory; the cache is only filled from storage or after a durable write, so it never knows
//! a link the store does not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_storage::{IdLinkRecord, StorageError, Store, WriteSet};

use crate::ids::now_ms;

/// Most links kept in the cache; past it the cache is emptied and refilled on demand.
const CACHE_LIMIT: usize = 100_000;

/// One end of a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    /// System (connector) name.
    pub system: String,
    /// Entity name.
    pub entity: String,
    /// The record's id in that system.
    pub id: String,
}

type CacheKey = (String, String, RecordRef, String);

/// The ID maps of every tenant, over one store. Cheap to clone.
#[derive(Clone)]
pub struct IdMaps {
    store: Store,
    cache: Arc<Mutex<HashMap<CacheKey, RecordRef>>>,
}

impl IdMaps {
    /// ID maps over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// The record of `other_system` linked to `from`, if any.
    ///
    /// # Errors
    /// Storage errors.
    pub fn lookup(
        &self,
        space: &str,
        tenant: &str,
        from: &RecordRef,
        other_system: &str,
    ) -> Result<Option<RecordRef>, StorageError> {
        let key = (
            space.to_owned(),
            tenant.to_owned(),
            from.clone(),
            other_system.to_owned(),
        );
        if let Some(hit) = self.cache_get(&key) {
            return Ok(Some(hit));
        }
        let found = self
            .store
            .id_links(space, tenant, &from.system, &from.entity, &from.id)?
            .into_iter()
            .find(|l| l.other_system == other_system)
            .map(|l| RecordRef {
                system: l.other_system,
                entity: l.other_entity,
                id: l.other_id,
            });
        if let Some(found) = &found {
            self.cache_put(key, found.clone());
        }
        Ok(found)
    }

    /// Every link from `from`, as stored.
    ///
    /// # Errors
    /// Storage errors.
    pub fn links(
        &self,
        space: &str,
        tenant: &str,
        from: &RecordRef,
    ) -> Result<Vec<IdLinkRecord>, StorageError> {
        self.store
            .id_links(space, tenant, &from.system, &from.entity, &from.id)
    }

    /// Adds the link `a` ↔ `b` (both directions) to `writes`; call [`IdMaps::remember`]
    /// after the batch is durable.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn stage_link(
        writes: &mut WriteSet,
        space: &str,
        tenant: &str,
        a: &RecordRef,
        b: &RecordRef,
    ) -> Result<(), StorageError> {
        let now = now_ms();
        writes.put_id_link(
            space,
            tenant,
            &IdLinkRecord {
                system: a.system.clone(),
                entity: a.entity.clone(),
                id: a.id.clone(),
                other_system: b.system.clone(),
                other_entity: b.entity.clone(),
                other_id: b.id.clone(),
                created_at_ms: now,
                updated_at_ms: now,
            },
        )?;
        Ok(())
    }

    /// Caches a durable link in both directions.
    pub fn remember(&self, space: &str, tenant: &str, a: &RecordRef, b: &RecordRef) {
        for (x, y) in [(a, b), (b, a)] {
            self.cache_put(
                (
                    space.to_owned(),
                    tenant.to_owned(),
                    x.clone(),
                    y.system.clone(),
                ),
                y.clone(),
            );
        }
    }

    /// Links `a` ↔ `b` durably (one batch, both directions) and caches it.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn link(
        &self,
        space: &str,
        tenant: &str,
        a: &RecordRef,
        b: &RecordRef,
    ) -> Result<(), StorageError> {
        let mut w = WriteSet::new();
        Self::stage_link(&mut w, space, tenant, a, b)?;
        self.store.commit(w).await?;
        self.remember(space, tenant, a, b);
        Ok(())
    }

    fn cache_get(&self, key: &CacheKey) -> Option<RecordRef> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    fn cache_put(&self, key: CacheKey, value: RecordRef) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::StoreOptions;

    fn r(system: &str, entity: &str, id: &str) -> RecordRef {
        RecordRef {
            system: system.into(),
            entity: entity.into(),
            id: id.into(),
        }
    }

    #[tokio::test]
    async fn links_are_bidirectional_durable_and_tenant_scoped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let order = r("shopify", "order", "820982911946154508");
        let invoice = r("xero", "invoice", "inv-1");
        {
            let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
            let maps = IdMaps::new(store);
            maps.link("sp", "acme", &order, &invoice)
                .await
                .expect("link");
            assert_eq!(
                maps.lookup("sp", "acme", &order, "xero").expect("lookup"),
                Some(invoice.clone())
            );
            assert_eq!(
                maps.lookup("sp", "globex", &order, "xero").expect("lookup"),
                None
            );
        }
        // A fresh store (empty cache) finds both directions on disk.
        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        let maps = IdMaps::new(store);
        assert_eq!(
            maps.lookup("sp", "acme", &invoice, "shopify")
                .expect("lookup"),
            Some(order.clone())
        );
        assert_eq!(maps.links("sp", "acme", &order).expect("links").len(), 1);
    }
}
