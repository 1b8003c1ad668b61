//! Builds the HTTP request of a definition-driven action from the step's rendered input.
//!
//! Input shape (every field optional unless the path names it):
//! `{"<path param>": "…", "query": {"k": "v"}, "body": <any>, "maxPages": 10}`.
//! - `{name}` in the action's path comes from `input.<name>` (string or integer),
//!   percent-encoded as one path segment; a missing one is an error naming it.
//! - `{name}` in the base URL and in header values comes from the credential's `params`.
//! - The query is the action's defaults overlaid with `input.query` (scalars as text).
//! - The body is the action's body template rendered with `{"input": input}` by the flow
//!   template engine, or `input.body` when the action has none; form-encoded actions flatten
//!   it the way Stripe documents (`metadata[key]=v`, `items[0][price]=p`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::def::{ActionDef, BodyFormat, ConnectorDef};
use crate::mapping::template::render_value;

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Sent as `application/json`.
    Json(Value),
    /// Sent as `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
}

/// A request ready to send (before auth is applied).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPlan {
    /// HTTP method.
    pub method: String,
    /// Absolute URL without the query.
    pub url: String,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Headers from the definition, placeholders filled.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Body>,
}

/// Why a request could not be built (never retryable: the flow or credential is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Builds the request of `action` for `input`. `base_url` overrides the definition's (the
/// credential's `baseUrl`); `params` are the credential's non-secret parameters.
///
/// # Errors
/// A missing path or base URL parameter, or a body template that does not render.
pub fn build(
    def: &ConnectorDef,
    action: &ActionDef,
    base_url: Option<&str>,
    params: &Map<String, Value>,
    input: &Value,
) -> Result<RequestPlan, BuildError> {
    let base = fill(
        base_url.unwrap_or(&def.base_url),
        params,
        "credential params",
        false,
    )?;
    let empty = Map::new();
    let fields = input.as_object().unwrap_or(&empty);
    let path = fill(&action.path, fields, "input", true)?;
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let mut query: BTreeMap<String, String> = action.query.clone();
    if let Some(extra) = input.get("query").and_then(Value::as_object) {
        for (k, v) in extra {
            match scalar_text(v) {
                Some(text) => {
                    query.insert(k.clone(), text);
                }
                None => {
                    query.remove(k);
                }
            }
        }
    }
    let headers = def
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), fill(v, params, "credential params", false)?)))
        .collect::<Result<Vec<_>, BuildError>>()?;
    let body_value = match &action.body {
        Some(template) => Some(
            render_value(template, &json!({"input": input}))
                .map_err(|e| BuildError(format!("body template: {e}")))?,
        ),
        None if matches!(action.method.as_str(), "POST" | "PUT" | "PATCH") => Some(
            input
                .get("body")
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
        ),
        None => None,
    };
    let body = body_value.map(|v| match action.body_format {
        BodyFormat::Json => Body::Json(v),
        BodyFormat::Form => Body::Form(form_pairs(&v)),
    });
    Ok(RequestPlan {
        method: action.method.clone(),
        url,
        query: query.into_iter().collect(),
        headers,
        body,
    })
}

/// Replaces `{name}` with `values[name]`. With `encode`, values are percent-encoded as one
/// path segment (so `../x` cannot climb the provider's paths).
fn fill(
    template: &str,
    values: &Map<String, Value>,
    source: &str,
    encode: bool,
) -> Result<String, BuildError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..start + len];
        let value = values
            .get(name)
            .and_then(scalar_text)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| BuildError(format!("{source}.{name} is required")))?;
        if encode {
            out.push_str(&percent_encode_segment(&value));
        } else {
            out.push_str(&value);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// RFC 3986 unreserved characters pass; everything else is `%XX`.
pub fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

/// Flattens JSON the way Stripe's form encoding nests: `{"a": {"b": 1}, "c": [2]}` →
/// `a[b]=1`, `c[0]=2`. Nulls are left out.
pub fn form_pairs(v: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}[{k}]")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::Null => {}
            other => {
                if let Some(text) = scalar_text(other) {
                    out.push((prefix.to_owned(), text));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::registry;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn xero_create_invoice_wraps_the_body_and_sends_the_tenant_header() {
        let (c, a) = registry().action("xero", "createInvoice").expect("action");
        let p = build(
            c,
            a,
            None,
            &params(json!({"xeroTenantId": "t-1"})),
            &json!({"body": {"Type": "ACCREC", "Contact": {"EmailAddress": "a@b.c"}}}),
        )
        .expect("build");
        assert_eq!(p.method, "POST");
        assert_eq!(p.url, "https://api.xero.com/api.xro/2.0/Invoices");
        assert!(p.headers.contains(&("xero-tenant-id".into(), "t-1".into())));
        assert_eq!(
            p.body,
            Some(Body::Json(
                json!({"Invoices": [{"Type": "ACCREC", "Contact": {"EmailAddress": "a@b.c"}}]})
            ))
        );
        let e = build(c, a, None, &Map::new(), &json!({})).expect_err("tenant id");
        assert!(e.0.contains("xeroTenantId"), "{e}");
    }

    #[test]
    fn path_params_are_encoded_and_required_and_base_url_overrides() {
        let (c, a) = registry().action("shopify", "getOrder").expect("action");
        let p = build(
            c,
            a,
            Some("http://127.0.0.1:9/admin/"),
            &Map::new(),
            &json!({"id": "../../x y", "query": {"fields": "id,email", "limit": null}}),
        )
        .expect("build");
        assert_eq!(
            p.url,
            "http://127.0.0.1:9/admin/orders/..%2F..%2Fx%20y.json"
        );
        assert_eq!(p.query, vec![("fields".into(), "id,email".into())]);
        assert!(p.body.is_none());
        let e = build(c, a, Some("http://x"), &Map::new(), &json!({})).expect_err("id");
        assert_eq!(e.0, "input.id is required");
        let (c, a) = registry().action("shopify", "listOrders").expect("action");
        let e = build(c, a, None, &Map::new(), &json!({})).expect_err("shop");
        assert!(e.0.contains("shop"), "{e}");
    }

    #[test]
    fn stripe_bodies_are_form_encoded_with_brackets() {
        let (c, a) = registry()
            .action("stripe", "createCustomer")
            .expect("action");
        let p = build(
            c,
            a,
            None,
            &Map::new(),
            &json!({"body": {"email": "a@b.c", "metadata": {"order": 5}, "preferred_locales": ["en", "fr"], "x": null}}),
        )
        .expect("build");
        assert_eq!(
            p.body,
            Some(Body::Form(vec![
                ("email".into(), "a@b.c".into()),
                ("metadata[order]".into(), "5".into()),
                ("preferred_locales[0]".into(), "en".into()),
                ("preferred_locales[1]".into(), "fr".into()),
            ]))
        );
    }
}
