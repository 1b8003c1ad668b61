//! The shape of a connector definition: plain data, read from the JSON files in `defs/`
//! (compiled into the binary) and checked by [`super::registry`] at first use.
//!
//! A definition says where the provider lives (`baseUrl`, with `{param}` placeholders filled
//! from the credential's non-secret `params`), how a credential is applied (`auth`), what it
//! can do (`actions`: method, path, default query, body template, pagination, where the
//! records and the created id are in the answer), what it sends (`events`, `webhook`) and
//! which records it holds (`entities`, for discovery, polling and sync).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectorDef {
    /// Identifier used in flows and credentials: `shopify`, `cin7core`.
    pub name: String,
    /// Display name.
    pub title: String,
    /// The reference's category (`E-commerce`, `Accounting`…).
    pub category: String,
    /// The provider's API documentation the definition follows.
    pub docs: String,
    /// Base URL of the API; `{name}` placeholders come from the credential's `params`.
    /// Empty for connectors that are not HTTP APIs (email) or take full URLs (http).
    pub base_url: String,
    /// How credentials apply.
    pub auth: AuthDef,
    /// Headers sent with every call; values may hold `{param}` placeholders.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Outbound rate limit per integration (credential), from the provider's documented limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitDef>,
    /// The operations.
    pub actions: Vec<ActionDef>,
    /// Webhook events the provider sends.
    #[serde(default)]
    pub events: Vec<EventDef>,
    /// How its webhooks are signed and identified; `None` when it sends none.
    #[serde(default)]
    pub webhook: Option<WebhookDef>,
    /// Records it holds.
    #[serde(default)]
    pub entities: Vec<EntityDef>,
}

/// Auth types a connector accepts and how each is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthDef {
    /// Accepted credential types: `oauth2`, `apiKey`, `basic`, `custom`, `smtp`, or `none`
    /// (a credential is optional).
    pub types: Vec<String>,
    /// Where an API key goes; defaults to `Authorization: Bearer <key>`.
    #[serde(default)]
    pub api_key: Option<ApiKeyPlacement>,
    /// OAuth2 endpoints of the provider (a credential may override the token URL).
    #[serde(default)]
    pub oauth2: Option<OAuth2Def>,
}

/// Where an API key is placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyPlacement {
    /// `header` or `query`.
    #[serde(rename = "in")]
    pub location: String,
    /// Header or query parameter name.
    pub name: String,
    /// Text before the key (`Bearer `), header placement only.
    #[serde(default)]
    pub prefix: String,
}

/// A provider's OAuth2 endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Def {
    /// Authorization endpoint (authorization code with PKCE).
    pub auth_url: String,
    /// Token endpoint (code exchange, refresh, client credentials).
    pub token_url: String,
    /// Scopes requested by default.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A token bucket: `burst` calls at once, refilled at `per_second`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitDef {
    /// Sustained calls per second (may be fractional: Xero's 60 per minute is 1.0).
    pub per_second: f64,
    /// Calls allowed at once.
    pub burst: u32,
    /// Provider header reporting bucket use as `used/limit` (Shopify's
    /// `X-Shopify-Shop-Api-Call-Limit: 39/40`); the executor slows down near the limit.
    #[serde(default)]
    pub usage_header: Option<String>,
}

/// How a call travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A call built from `method`, `path`, `query` and `body` against the base URL.
    #[default]
    Http,
    /// The generic HTTP request: the input carries `method`, `url`, `headers`, `body`.
    Raw,
    /// An email sent over SMTP.
    Smtp,
}

/// Request body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` with Stripe's nesting (`a[b][0]=c`).
    Form,
}

/// What an action does to its entity (create vs update drives ID-map upserts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Reads many records.
    List,
    /// Reads one record.
    Get,
    /// Creates a record.
    Create,
    /// Changes a record.
    Update,
    /// Removes a record.
    Delete,
    /// Anything else (send a message, generate an image…).
    #[default]
    Other,
}

/// One action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionDef {
    /// Identifier used in flows: `createInvoice`.
    pub name: String,
    /// What it does, for people.
    pub title: String,
    /// How it travels.
    #[serde(default)]
    pub transport: Transport,
    /// HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`); empty for raw and SMTP.
    #[serde(default)]
    pub method: String,
    /// Path below the base URL; `{name}` placeholders come from the input field `name`
    /// (percent-encoded as one path segment; required).
    #[serde(default)]
    pub path: String,
    /// Default query parameters; the input's `query` object adds to and overrides them.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Body template rendered with `{"input": <step input>}` by the flow template engine;
    /// absent means the input's `body` as is (for POST, PUT, PATCH).
    #[serde(default)]
    pub body: Option<Value>,
    /// Body encoding.
    #[serde(default)]
    pub body_format: BodyFormat,
    /// Pagination of a list action.
    #[serde(default)]
    pub pagination: Option<Pagination>,
    /// Dot path of the records in the answer (`orders`, `data`, `Invoices`).
    #[serde(default)]
    pub result: Option<String>,
    /// Dot path of the affected record's id in the answer (`Invoices[0].InvoiceID`).
    #[serde(default)]
    pub id: Option<String>,
    /// A boolean field that must be true in a 2xx answer (Slack's `ok`).
    #[serde(default)]
    pub ok_field: Option<String>,
    /// Entity it works on.
    #[serde(default)]
    pub entity: Option<String>,
    /// What it does to that entity.
    #[serde(default)]
    pub operation: Operation,
}

/// How a list action pages, as each provider documents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Pagination {
    /// Follow the `Link: <…>; rel="next"` header (RFC 8288; Shopify REST, GitHub).
    LinkHeader,
    /// A cursor sent back as query parameter `param`.
    Cursor {
        /// Query parameter carrying the cursor (`starting_after`, `cursor`).
        param: String,
        /// `lastItem`: the `field` of the page's last record (Stripe); `body`: the answer's
        /// `field` (Slack's `response_metadata.next_cursor`).
        from: String,
        /// Dot path of the cursor value.
        field: String,
        /// Dot path of a boolean saying more pages exist (Stripe's `has_more`).
        #[serde(default, rename = "hasMore")]
        has_more: Option<String>,
    },
    /// A page number in query parameter `param`, starting at `start`; stops at a page shorter
    /// than `size` (Xero, Cin7).
    Page {
        /// Query parameter of the page number.
        param: String,
        /// First page number.
        start: u64,
        /// Records per page the provider returns.
        size: u64,
        /// Query parameter that asks for `size` records per page, if the provider has one.
        #[serde(default, rename = "sizeParam")]
        size_param: Option<String>,
    },
}

/// A webhook event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventDef {
    /// Normalized name used in triggers: `order.created`.
    pub name: String,
    /// The provider's own name: `orders/create`.
    pub native: String,
    /// Entity it carries.
    #[serde(default)]
    pub entity: Option<String>,
}

/// How a provider's webhooks are signed and identified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookDef {
    /// Signature scheme name understood by the receiver (`shopify`, `github`…), or `None`
    /// when the receiver has no verifier for it yet.
    #[serde(default)]
    pub signature: Option<String>,
    /// Header or body field naming the event.
    pub event_from: String,
    /// Header or body field carrying the delivery id.
    pub delivery_id_from: String,
}

/// A record kind the connector holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityDef {
    /// Entity name: `order`.
    pub name: String,
    /// The CDM entity it maps to (`CDMOrder`), if any.
    #[serde(default)]
    pub cdm: Option<String>,
    /// Action that lists it (polling), if any.
    #[serde(default)]
    pub list: Option<String>,
    /// Action that creates it.
    #[serde(default)]
    pub create: Option<String>,
    /// Action that updates it.
    #[serde(default)]
    pub update: Option<String>,
    /// Field holding the last-change time (polling cursor, last-write-wins).
    #[serde(default)]
    pub updated_field: Option<String>,
    /// Field holding the record id.
    pub id_field: String,
    /// Query parameter of the list action asking for records changed at or after a time
    /// (Shopify's `updated_at_min`, GitHub's `since`): polling sends its cursor there.
    #[serde(default)]
    pub since_param: Option<String>,
}
