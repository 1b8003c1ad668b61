//! Records of connector polling and of OAuth2 authorizations in progress, with their typed
//! reads and writes. Same rules as [`crate::records`]: plain data, times in Unix ms.

use serde::{Deserialize, Serialize};

use crate::codec::Record;
use crate::error::Result;
use crate::keys;
use crate::store::{Ks, Store};
use crate::write_set::WriteSet;

/// A poll registration: list `action` of `connector` every `every_ms` and emit
/// `"{entity}.changed"` for each record whose content changed. Keyed by (space, tenant, id)
/// in [`Ks::Polls`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRecord {
    /// Poll id (`poll_…`).
    pub id: String,
    /// Space id.
    pub space_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Connector name (`shopify`); also the source of the emitted events.
    pub connector: String,
    /// Entity name (`order`): events are `"{entity}.changed"`.
    pub entity: String,
    /// The list action called (`listOrders`).
    pub action: String,
    /// Credential id used for the calls, if the connector needs one.
    pub credential: Option<String>,
    /// Interval between polls, ms.
    pub every_ms: u64,
    /// Query parameter that asks for records changed since the cursor (`updated_at_min`);
    /// `None` lists everything each time (hashes still drop the unchanged).
    pub since_param: Option<String>,
    /// Field of a record holding its change time (`updated_at`): the cursor is its largest
    /// value seen.
    pub updated_field: Option<String>,
    /// Field of a record holding its id.
    pub id_field: String,
    /// The stored cursor: the largest `updated_field` value seen so far.
    pub cursor: Option<String>,
    /// When the poll is next due, Unix ms.
    pub next_due_ms: u64,
    /// When it last ran, Unix ms.
    pub last_run_ms: Option<u64>,
    /// The last run's failure, `None` after a success.
    pub last_error: Option<String>,
    /// Events emitted so far.
    pub emitted: u64,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// The content hash a poll last saw for one record, keyed by (space, tenant, poll id, record
/// id) in [`Ks::PollSeen`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSeenRecord {
    /// The record's id at the provider.
    pub record_id: String,
    /// SHA-256 hex of its canonical JSON.
    pub hash: String,
    /// When this hash was first seen, Unix ms.
    pub seen_at_ms: u64,
}

/// An OAuth2 authorization code flow in progress, keyed by its `state` in
/// [`Ks::OAuthPending`]. The PKCE verifier is sealed by the credential vault (the record
/// holds only nonce and ciphertext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthPendingRecord {
    /// The `state` value sent to the provider.
    pub state: String,
    /// Space id.
    pub space_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Credential that receives the tokens.
    pub credential_id: String,
    /// Redirect URI sent with the authorization request (repeated in the code exchange).
    pub redirect_uri: String,
    /// Nonce of the sealed PKCE verifier.
    pub nonce: Vec<u8>,
    /// The sealed PKCE verifier.
    pub ciphertext: Vec<u8>,
    /// When the authorization stops being accepted, Unix ms.
    pub expires_at_ms: u64,
}

impl Record for PollRecord {
    const KIND: &'static str = "poll";
}
impl Record for PollSeenRecord {
    const KIND: &'static str = "poll seen";
}
impl Record for OAuthPendingRecord {
    const KIND: &'static str = "oauth pending";
}

impl Store {
    /// Every poll of every tenant.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn all_polls(&self) -> Result<Vec<PollRecord>> {
        self.scan_prefix(Ks::Polls, &[])
    }

    /// A tenant's polls, by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn polls(&self, space: &str, tenant: &str) -> Result<Vec<PollRecord>> {
        self.scan_prefix(Ks::Polls, &keys::tenant_prefix(space, tenant).build())
    }

    /// One poll.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn poll(&self, space: &str, tenant: &str, id: &str) -> Result<Option<PollRecord>> {
        self.get(Ks::Polls, &keys::poll(space, tenant, id))
    }

    /// The hash a poll last saw for a record.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn poll_seen(
        &self,
        space: &str,
        tenant: &str,
        poll_id: &str,
        record_id: &str,
    ) -> Result<Option<PollSeenRecord>> {
        self.get(
            Ks::PollSeen,
            &keys::poll_seen(space, tenant, poll_id, record_id),
        )
    }

    /// Every hash a poll holds.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn poll_seen_all(
        &self,
        space: &str,
        tenant: &str,
        poll_id: &str,
    ) -> Result<Vec<PollSeenRecord>> {
        self.scan_prefix(Ks::PollSeen, &keys::poll(space, tenant, poll_id))
    }

    /// A pending OAuth2 authorization.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn oauth_pending(&self, state: &str) -> Result<Option<OAuthPendingRecord>> {
        self.get(Ks::OAuthPending, &keys::oauth_pending(state))
    }
}

impl WriteSet {
    /// Puts a poll registration.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_poll(&mut self, r: &PollRecord) -> Result<&mut Self> {
        self.put(Ks::Polls, keys::poll(&r.space_id, &r.tenant_id, &r.id), r)
    }

    /// Deletes a poll registration (its seen hashes are deleted with
    /// [`WriteSet::delete_poll_seen`]).
    pub fn delete_poll(&mut self, space: &str, tenant: &str, id: &str) -> &mut Self {
        self.delete(Ks::Polls, keys::poll(space, tenant, id))
    }

    /// Puts the hash a poll saw for a record.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_poll_seen(
        &mut self,
        space: &str,
        tenant: &str,
        poll_id: &str,
        r: &PollSeenRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::PollSeen,
            keys::poll_seen(space, tenant, poll_id, &r.record_id),
            r,
        )
    }

    /// Deletes the hash a poll saw for a record.
    pub fn delete_poll_seen(
        &mut self,
        space: &str,
        tenant: &str,
        poll_id: &str,
        record_id: &str,
    ) -> &mut Self {
        self.delete(
            Ks::PollSeen,
            keys::poll_seen(space, tenant, poll_id, record_id),
        )
    }

    /// Puts a pending OAuth2 authorization.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_oauth_pending(&mut self, r: &OAuthPendingRecord) -> Result<&mut Self> {
        self.put(Ks::OAuthPending, keys::oauth_pending(&r.state), r)
    }

    /// Deletes a pending OAuth2 authorization.
    pub fn delete_oauth_pending(&mut self, state: &str) -> &mut Self {
        self.delete(Ks::OAuthPending, keys::oauth_pending(state))
    }
}
