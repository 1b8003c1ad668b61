//! The built-in connectors, parsed once from the JSON definitions compiled into the binary,
//! and checked so that a definition error is a test failure, not a runtime surprise.

use std::sync::OnceLock;

use super::def::{ActionDef, ConnectorDef, Transport};
use crate::mapping::template::Template;

/// The definition files, in listing order.
const SOURCES: &[(&str, &str)] = &[
    ("shopify", include_str!("defs/shopify.json")),
    ("stripe", include_str!("defs/stripe.json")),
    ("xero", include_str!("defs/xero.json")),
    ("quickbooks", include_str!("defs/quickbooks.json")),
    ("cin7core", include_str!("defs/cin7core.json")),
    ("cin7omni", include_str!("defs/cin7omni.json")),
    ("github", include_str!("defs/github.json")),
    ("slack", include_str!("defs/slack.json")),
    ("email", include_str!("defs/email.json")),
    ("http", include_str!("defs/http.json")),
    ("openai", include_str!("defs/openai.json")),
];

/// Every built-in connector.
#[derive(Debug)]
pub struct Registry {
    connectors: Vec<ConnectorDef>,
}

impl Registry {
    /// All connectors, in listing order.
    pub fn all(&self) -> &[ConnectorDef] {
        &self.connectors
    }

    /// One connector by name.
    pub fn get(&self, name: &str) -> Option<&ConnectorDef> {
        self.connectors.iter().find(|c| c.name == name)
    }

    /// One action of one connector.
    pub fn action(&self, connector: &str, action: &str) -> Option<(&ConnectorDef, &ActionDef)> {
        let c = self.get(connector)?;
        c.actions.iter().find(|a| a.name == action).map(|a| (c, a))
    }
}

/// The registry of built-in connectors.
///
/// # Panics
/// Never for the shipped definitions: [`load`] is run by this module's tests, so a broken
/// definition fails the build's tests; the message names the file and the problem.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| match load() {
        Ok(r) => r,
        Err(e) => panic!("built-in connector definitions are invalid: {e}"),
    })
}

/// Parses and checks every definition.
///
/// # Errors
/// A message naming the file and what is wrong with it.
pub fn load() -> Result<Registry, String> {
    let mut connectors = Vec::with_capacity(SOURCES.len());
    for (file, text) in SOURCES {
        let def: ConnectorDef =
            serde_json::from_str(text).map_err(|e| format!("defs/{file}.json: {e}"))?;
        check(&def).map_err(|e| format!("defs/{file}.json: {e}"))?;
        if def.name != *file {
            return Err(format!("defs/{file}.json: name is {:?}", def.name));
        }
        connectors.push(def);
    }
    Ok(Registry { connectors })
}

fn check(def: &ConnectorDef) -> Result<(), String> {
    const AUTH: &[&str] = &["oauth2", "apiKey", "basic", "custom", "smtp", "none"];
    if def.auth.types.is_empty() {
        return Err("auth.types is empty".into());
    }
    for t in &def.auth.types {
        if !AUTH.contains(&t.as_str()) {
            return Err(format!("unknown auth type {t:?}"));
        }
    }
    if def.auth.types.iter().any(|t| t == "oauth2")
        && def.auth.oauth2.is_none()
        && def.name != "http"
    {
        return Err("oauth2 accepted but no auth.oauth2 endpoints".into());
    }
    let mut names = std::collections::HashSet::new();
    for a in &def.actions {
        if !names.insert(a.name.as_str()) {
            return Err(format!("duplicate action {:?}", a.name));
        }
        if a.transport == Transport::Http {
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&a.method.as_str()) {
                return Err(format!("action {}: bad method {:?}", a.name, a.method));
            }
            if !a.path.starts_with('/') || def.base_url.is_empty() {
                return Err(format!(
                    "action {}: needs a baseUrl and a path from /",
                    a.name
                ));
            }
        }
        if let Some(body) = &a.body {
            check_templates(body).map_err(|e| format!("action {}: body: {e}", a.name))?;
        }
        if let Some(entity) = &a.entity
            && !def.entities.iter().any(|e| &e.name == entity)
            && !def.entities.is_empty()
            && a.operation != super::def::Operation::Other
        {
            return Err(format!("action {}: unknown entity {entity:?}", a.name));
        }
    }
    for e in &def.entities {
        for action in [&e.list, &e.create, &e.update].into_iter().flatten() {
            if !names.contains(action.as_str()) {
                return Err(format!("entity {}: unknown action {action:?}", e.name));
            }
        }
    }
    Ok(())
}

fn check_templates(v: &serde_json::Value) -> Result<(), String> {
    match v {
        serde_json::Value::String(s) => Template::parse(s).map(|_| ()).map_err(|e| e.to_string()),
        serde_json::Value::Array(a) => a.iter().try_for_each(check_templates),
        serde_json::Value::Object(o) => o.values().try_for_each(check_templates),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_loads_and_the_eleven_are_there() {
        let r = load().expect("definitions");
        let names: Vec<&str> = r.all().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "shopify",
                "stripe",
                "xero",
                "quickbooks",
                "cin7core",
                "cin7omni",
                "github",
                "slack",
                "email",
                "http",
                "openai"
            ]
        );
        for c in r.all() {
            assert!(!c.actions.is_empty(), "{} has no actions", c.name);
        }
    }

    #[test]
    fn reference_actions_exist() {
        let r = registry();
        for (c, a) in [
            ("shopify", "listOrders"),
            ("shopify", "setInventoryLevel"),
            ("shopify", "createFulfillment"),
            ("stripe", "createRefund"),
            ("stripe", "createSubscription"),
            ("xero", "createInvoice"),
            ("xero", "createBankTransaction"),
            ("quickbooks", "createEstimate"),
            ("cin7core", "listPurchaseOrders"),
            ("cin7omni", "listReturns"),
            ("github", "createPullRequest"),
            ("slack", "addReaction"),
            ("email", "send"),
            ("http", "request"),
            ("openai", "generateImage"),
        ] {
            assert!(r.action(c, a).is_some(), "{c}.{a}");
        }
        assert!(r.action("xero", "nope").is_none());
    }

    #[test]
    fn a_broken_definition_is_named() {
        let mut def: ConnectorDef =
            serde_json::from_str(include_str!("defs/xero.json")).expect("xero");
        def.actions[0].method = "FETCH".into();
        assert!(check(&def).expect_err("bad method").contains("FETCH"));
        let mut def: ConnectorDef =
            serde_json::from_str(include_str!("defs/xero.json")).expect("xero");
        def.entities[0].create = Some("makeInvoice".into());
        assert!(check(&def).expect_err("bad ref").contains("makeInvoice"));
    }
}
