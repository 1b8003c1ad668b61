//! The CDM schema endpoints and `POST /api/v1/transform/preview` on the real binary,
//! including the JSONPath compliance suite sample (`../shared/fixtures/jsonpath-cts`)
//! driven through the endpoint.

mod common;

use std::path::PathBuf;

use common::Server;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdm_schemas_and_preview() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());

    // Schemas: list, one entity, unknown, unauthenticated.
    let (s, list) = server.get_json("/cdm/entities").await;
    assert_eq!(s, 200, "{list}");
    let names: Vec<&str> = list["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "CDMContact",
            "CDMProduct",
            "CDMOrder",
            "CDMInvoice",
            "CDMInventoryLevel",
            "CDMFulfillment"
        ]
    );
    let (s, schema) = server.get_json("/cdm/entities/CDMInvoice").await;
    assert_eq!(s, 200);
    assert_eq!(schema["title"], "CDMInvoice");
    assert!(schema["properties"]["dueDate"].is_object(), "{schema}");
    assert_eq!(schema["$defs"]["CurrencyCode"]["pattern"], "^[A-Z]{3}$");
    let (s, body) = server.get_json("/cdm/entities/CDMWidget").await;
    assert_eq!(s, 404);
    assert_eq!(
        body["message"],
        "The resource does not exist, or you do not have access."
    );
    let r = server
        .client
        .get(format!("{}/api/v1/cdm/entities", server.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);

    // Discovery reports the coverage of the CDM mappings.
    let (s, body) = server
        .post_json("/connectors/discover", &json!({"connector": "shopify"}))
        .await;
    assert_eq!(s, 200, "{body}");
    let order = body["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .find(|e| e["cdm"] == "CDMOrder")
        .expect("shopify orders map to CDMOrder");
    let score = order["coverage"]["score"].as_f64().expect("a score");
    assert!(score > 0.5 && score <= 1.0, "{order}");

    // A mapping with JSONPath, templates and declared coercions.
    let doc = json!({"order": {"id": 820982911946154508_u64, "total": "404.95", "currency": "usd",
                     "created": "03-04-2024", "items": [{"sku": "A"}, {"sku": "B"}]}});
    let mapping = json!({
        "id": {"from": "$.order.id", "type": "string"},
        "total": {"from": "$.order.total", "type": "money", "currency": "$.order.currency"},
        "createdAt": {"from": "$.order.created", "type": "datetime", "format": "DD-MM-YYYY"},
        "skus": "$.order.items[*].sku",
        "label": "Order {{ order.id }}: {{ MULTIPLY(order.total, 2) }}"
    });
    let (s, body) = server
        .post_json(
            "/transform/preview",
            &json!({"document": doc, "mapping": mapping}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["result"],
        json!({"id": "820982911946154508", "total": {"amount": "404.95", "currency": "USD"},
               "createdAt": "2024-04-03T00:00:00Z", "skus": ["A", "B"],
               "label": "Order 820982911946154508: 809.90"})
    );

    // Every error, with its field and position.
    let bad = json!({"a": "$.x[", "b": "{{ NOPE(1) }}", "c": {"from": "$.d", "type": "datetime"}});
    let (s, body) = server
        .post_json(
            "/transform/preview",
            &json!({"document": {"d": "03-04-2024"}, "mapping": bad}),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["code"], "BAD_REQUEST");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "compile errors first: {body}");
    assert_eq!(errors[0]["field"], "a");
    assert_eq!(errors[1]["field"], "b");
    assert_eq!(errors[1]["position"], 3);
    let (s, body) = server
        .post_json(
            "/transform/preview",
            &json!({"document": {"d": "03-04-2024"}, "mapping": {"c": {"from": "$.d", "type": "datetime"}}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ambiguous"),
        "{body}"
    );

    // Expressions: a template, a JSONPath, a bad one, and both or neither given.
    let (s, body) = server
        .post_json(
            "/transform/preview",
            &json!({"document": {"n": "ada"}, "expression": "{{ UPPER(n) }}"}),
        )
        .await;
    assert_eq!((s, &body["result"]), (200, &json!("ADA")));
    let (s, body) = server
        .post_json(
            "/transform/preview",
            &json!({"document": {"n": "ada"}, "expression": "$.n"}),
        )
        .await;
    assert_eq!((s, &body["result"]), (200, &json!(["ada"])));
    let (s, body) = server
        .post_json(
            "/transform/preview",
            &json!({"document": {}, "expression": "{{ ADD(1) }}"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(body["errors"][0]["position"], 3, "{body}");
    for body in [
        json!({"document": {}}),
        json!({"document": {}, "expression": "$", "mapping": {}}),
    ] {
        let (s, _) = server.post_json("/transform/preview", &body).await;
        assert_eq!(s, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonpath_compliance_suite_through_the_preview_endpoint() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/jsonpath-cts/cts.sample.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} is absent", path.display());
        return;
    };
    let suite: Value = serde_json::from_str(&text).expect("cts");
    let tests = suite["tests"].as_array().expect("tests");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut failures = Vec::new();
    for t in tests {
        let name = t["name"].as_str().unwrap_or("?");
        let document = t.get("document").cloned().unwrap_or(Value::Null);
        let (s, body) = server
            .post_json(
                "/transform/preview",
                &json!({"document": document, "expression": t["selector"]}),
            )
            .await;
        let ok = if t.get("invalid_selector").is_some() {
            s == 400 && body["errors"][0]["position"].is_u64()
        } else if let Some(want) = t.get("result") {
            s == 200 && &body["result"] == want
        } else {
            s == 200
                && t["results"]
                    .as_array()
                    .is_some_and(|any| any.contains(&body["result"]))
        };
        if !ok {
            failures.push(format!("{name}: {s} {body}"));
        }
    }
    println!(
        "JSONPath CTS sample through /transform/preview: {} passed, {} failed",
        tests.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
