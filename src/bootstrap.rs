//! First start on an empty data directory: create the space, its `default` tenant and an
//! admin API key. `SLUICE_SPACE_ID` and `SLUICE_ADMIN_KEY`, when set at that first start, fix
//! those values; otherwise they are generated and printed once (the key is stored only as its
//! SHA-256 and can never be shown again).

use anyhow::Context;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sluice_actors::ids::now_ms;
use sluice_storage::{ApiKeyRecord, SpaceRecord, Store, TenantRecord, WriteSet, keys};

/// The tenant every space starts with; an empty `x-fastn-space-tenantid` means this one.
pub const DEFAULT_TENANT: &str = "default";

/// Ensures the data directory has a space, a `default` tenant and an admin key.
///
/// # Errors
/// Storage errors, or an invalid `SLUICE_SPACE_ID`.
pub async fn ensure(store: &Store) -> anyhow::Result<()> {
    if let Some(space) = store.spaces()?.into_iter().next() {
        tracing::info!(space = %space.id, "serving existing space");
        return Ok(());
    }
    let space_id = match std::env::var("SLUICE_SPACE_ID") {
        Ok(s) if !s.is_empty() => s,
        _ => format!("sp_{}", random_hex(8)),
    };
    keys::check_id(&space_id).context("SLUICE_SPACE_ID")?;
    let (admin_key, from_env) = match std::env::var("SLUICE_ADMIN_KEY") {
        Ok(k) if !k.is_empty() => (k, true),
        _ => (format!("sk_{}", random_hex(32)), false),
    };
    let now = now_ms();
    let mut w = WriteSet::new();
    w.put_space(&SpaceRecord {
        id: space_id.clone(),
        created_at_ms: now,
    })?;
    w.put_tenant(&TenantRecord {
        space_id: space_id.clone(),
        id: DEFAULT_TENANT.into(),
        created_at_ms: now,
    })?;
    w.put_api_key(
        &sha256(&admin_key),
        &ApiKeyRecord {
            space_id: space_id.clone(),
            tenant_id: None,
            label: "admin".into(),
            key_prefix: admin_key.chars().take(7).collect(),
            created_at_ms: now,
        },
    )?;
    store.commit(w).await?;
    println!("Created space {space_id} with tenant '{DEFAULT_TENANT}'.");
    if from_env {
        println!("Admin API key: taken from SLUICE_ADMIN_KEY.");
    } else {
        println!("Admin API key (shown once, store it now): {admin_key}");
    }
    Ok(())
}

/// SHA-256 of an API key, the form in which keys are stored and looked up.
pub fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
