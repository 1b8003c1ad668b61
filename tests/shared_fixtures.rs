//! Real provider payloads from `../shared/fixtures` (collected from public repositories, not
//! written here) go through the receipt path with correct signatures: each must be accepted
//! and normalized to the right event name. Skipped, with a message, when the folder is absent.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{Server, github_headers, send, shopify_headers};
use serde_json::Value;

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    dir.is_dir().then_some(dir)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// GitHub: the folder is the `X-GitHub-Event`; the first dotted part of the file name is the
/// action unless it is `payload` or a `with-…` variant name.
fn github_expectation(root: &Path, file: &Path) -> (String, String) {
    let rel = file.strip_prefix(root).expect("under root");
    let event = rel
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .expect("event dir")
        .to_owned();
    let name = file.file_name().and_then(|n| n.to_str()).expect("name");
    let first = name.split('.').next().unwrap_or("");
    let expected = if first == "payload" || first.starts_with("with-") {
        event.clone()
    } else {
        format!("{event}.{first}")
    };
    (event, expected)
}

/// Shopify topics → event names, written out by hand for the topics these fixtures carry.
fn shopify_names() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("orders/create", "order.created"),
        ("orders/updated", "order.updated"),
        ("orders/paid", "order.paid"),
        ("app/uninstalled", "app.uninstalled"),
        ("customers/create", "customer.created"),
        ("customers/update", "customer.updated"),
        ("draft_orders/create", "draft_order.created"),
        ("fulfillments/create", "fulfillment.created"),
        ("inventory_items/update", "inventory_item.updated"),
        ("inventory_levels/update", "inventory_level.updated"),
        ("products/create", "product.created"),
        ("products/update", "product.updated"),
        ("refunds/create", "refund.created"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_github_and_shopify_payloads_are_accepted_and_normalized() {
    let Some(root) = fixtures() else {
        eprintln!("skipped: ../shared/fixtures is absent");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let gh_url = server.webhook("default", "github", "fixture-secret").await;
    let shop_url = server.webhook("default", "shopify", "fixture-secret").await;

    let mut expected: HashMap<String, (String, String)> = HashMap::new();

    let gh_root = root.join("github-webhooks");
    for (i, file) in files(&gh_root).iter().enumerate() {
        let body = std::fs::read(file).expect("read");
        let (event, want) = github_expectation(&gh_root, file);
        let headers = github_headers("fixture-secret", &body, &event, &format!("gh-{i}"));
        let (s, ack) = send(&server.client, &gh_url, &headers, &body).await;
        assert_eq!(s, 202, "{}: {ack}", file.display());
        expected.insert(
            ack["eventId"].as_str().expect("id").into(),
            (want, file.display().to_string()),
        );
    }

    let names = shopify_names();
    let shop_root = root.join("shopify-webhooks");
    for (i, file) in files(&shop_root.join("metadatas")).iter().enumerate() {
        let meta: Value =
            serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
        let topic = meta["name"].as_str().expect("topic");
        let response = &meta["response"];
        if response.is_null() || response.as_object().is_some_and(|o| o.is_empty()) {
            continue;
        }
        let body = serde_json::to_vec(response).expect("json");
        let want = names
            .get(topic)
            .copied()
            .unwrap_or_else(|| panic!("add {topic} to the table"));
        let headers = shopify_headers("fixture-secret", &body, topic, &format!("shop-meta-{i}"));
        let (s, ack) = send(&server.client, &shop_url, &headers, &body).await;
        assert_eq!(s, 202, "{}: {ack}", file.display());
        expected.insert(
            ack["eventId"].as_str().expect("id").into(),
            (want.into(), file.display().to_string()),
        );
    }
    // The anonymised real bodies, sent byte for byte as `<resource>/create`.
    for (i, file) in files(&shop_root.join("exemplars")).iter().enumerate() {
        let body = std::fs::read(file).expect("read");
        let resource = file
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .expect("resource dir");
        let topic = format!("{resource}/create");
        let want = names
            .get(topic.as_str())
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("{}.created", resource.trim_end_matches('s')));
        let headers = shopify_headers("fixture-secret", &body, &topic, &format!("shop-ex-{i}"));
        let (s, ack) = send(&server.client, &shop_url, &headers, &body).await;
        assert_eq!(s, 202, "{}: {ack}", file.display());
        expected.insert(
            ack["eventId"].as_str().expect("id").into(),
            (want, file.display().to_string()),
        );
    }
    assert!(
        expected.len() >= 20,
        "too few fixtures found: {}",
        expected.len()
    );

    // Wait until every event was normalized, then compare names.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, events) = server.get_json("/tenants/default/events?limit=1000").await;
        let seen: HashMap<String, (String, Option<String>)> = events["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["eventId"].as_str().unwrap_or("").to_owned(),
                    (
                        e["eventType"].as_str().unwrap_or("").to_owned(),
                        e["error"].as_str().map(str::to_owned),
                    ),
                )
            })
            .collect();
        if expected.keys().all(|k| seen.contains_key(k)) {
            for (id, (want, file)) in &expected {
                let (got, err) = &seen[id];
                assert_eq!(err, &None, "{file} was dead-lettered");
                assert_eq!(got, want, "{file}");
            }
            eprintln!(
                "{} shared fixture payloads accepted and normalized",
                expected.len()
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all fixture events were routed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
