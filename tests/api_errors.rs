//! Bad input gets the documented status, code and body shape, and nothing is written.

mod common;

use common::{ADMIN_KEY, SPACE, Server, send, shopify_headers};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tenancy_and_malformed_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = &server.client;
    let url = |p: &str| format!("{}/api/v1{p}", server.base);

    // Health needs no auth.
    assert_eq!(server.health().await, 200);

    // No key, wrong key: 401. Wrong space: 403.
    let r = c.get(url("/tenants")).send().await.expect("req");
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert_eq!(body["statusCode"], 401);
    let r = c
        .get(url("/tenants"))
        .header("x-fastn-api-key", "sk_wrong")
        .header("x-fastn-space-id", SPACE)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    let r = c
        .get(url("/tenants"))
        .header("x-fastn-api-key", ADMIN_KEY)
        .header("x-fastn-space-id", "sp_other")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["code"],
        "FORBIDDEN"
    );

    // Unknown method and malformed query strings answer in the API's error format.
    let r = server
        .api(reqwest::Method::DELETE, "/tenants")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["code"],
        "METHOD_NOT_ALLOWED"
    );
    let (s, b) = server
        .get_json("/tenants/default/executions?limit=-1")
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("BAD_REQUEST")));

    // Tenant header contradicting the path: 403. Unknown tenant: 404.
    let r = server
        .api(reqwest::Method::GET, "/tenants/default/executions")
        .header("x-fastn-space-tenantid", "acme")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 403);
    let (s, b) = server.get_json("/tenants/nobody/executions").await;
    assert_eq!((s, b["code"].as_str()), (404, Some("NOT_FOUND")));

    // Malformed bodies: 400 with the documented shape.
    let r = server
        .api(reqwest::Method::POST, "/tenants")
        .body("{not json")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.expect("json");
    assert_eq!(b["code"], "BAD_REQUEST");
    assert!(
        b["message"].as_str().unwrap_or("").contains("invalid JSON"),
        "{b}"
    );
    let (s, _) = server
        .post_json("/tenants", &json!({"id": "bad id!"}))
        .await;
    assert_eq!(s, 400);
    // serde would read a struct from an array of its fields: a body must be an object.
    let r = server
        .api(reqwest::Method::POST, "/tenants")
        .body(r#"["from_array"]"#)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.expect("json");
    assert_eq!(b["code"], "BAD_REQUEST", "{b}");
    let (s, _) = server.get_json("/tenants/from_array/executions").await;
    assert_eq!(s, 404, "no tenant was created from the array");
    // A leading byte order mark is ignored, as on webhook bodies.
    let r = server
        .api(reqwest::Method::POST, "/tenants")
        .body("\u{feff}{\"id\": \"with_bom\"}")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 201);
    // The execute API's body is an {"input": …} wrapper: an array is refused too.
    let r = server
        .api(reqwest::Method::POST, "/some_flow")
        .body("[1]")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    // A path segment that is not UTF-8 once decoded: 400 in the error shape, not plain text.
    let (s, b) = server.get_json("/tenants/%ff/workflows").await;
    assert_eq!((s, b["code"].as_str()), (400, Some("BAD_REQUEST")), "{b}");
    assert_eq!(b["statusCode"], 400);
    let (s, _) = server
        .post_json("/tenants", &json!({"id": "default"}))
        .await;
    assert_eq!(s, 409);
    let (s, b) = server
        .post_json(
            "/tenants/default/webhooks",
            &json!({"connector": "myspace", "secret": "x"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");

    // A flow with a cycle names the step; unknown step references too.
    let cyclic = json!({
        "name": "loop_flow",
        "trigger": {"type": "event", "source": "github", "event": "push"},
        "steps": [
            {"name": "a", "type": "action", "mapping": {"x": "1"}, "dependsOn": ["b"]},
            {"name": "b", "type": "action", "mapping": {"x": "1"}, "dependsOn": ["a"]}
        ]
    });
    let (s, b) = server
        .post_json("/tenants/default/workflows", &cyclic)
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "INVALID_FLOW");
    assert_eq!(b["step"], "a");
    assert!(b["message"].as_str().unwrap_or("").contains("cycle"), "{b}");
    let (s, b) = server
        .post_json(
            "/tenants/default/workflows",
            &json!({"name": "x", "trigger": {"type": "event", "source": "github", "event": "push"},
                    "steps": [{"name": "a", "type": "action", "mapping": {"v": "{{steps.ghost.output}}"}}]}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap_or("").contains("ghost"), "{b}");
    let (_, list) = server.get_json("/tenants/default/workflows").await;
    assert_eq!(
        list["workflows"].as_array().map(Vec::len),
        Some(0),
        "nothing saved"
    );

    // Webhook receipt: unknown endpoint 404, wrong space 404, oversized 413, and none of them
    // leaves an event behind.
    let hook = server.webhook("default", "shopify", "s3cret").await;
    let body = br#"{"id": 1}"#;
    let headers = shopify_headers("s3cret", body, "orders/create", "w-1");
    let (s, _) = send(
        c,
        &format!("{}/api/v1/clients/{SPACE}/webhooks/wh_nope", server.base),
        &headers,
        body,
    )
    .await;
    assert_eq!(s, 404);
    let other_space = hook.replace(SPACE, "sp_other");
    let (s, _) = send(c, &other_space, &headers, body).await;
    assert_eq!(s, 404);
    let huge = vec![b'a'; 1024 * 1024 + 1];
    let (s, b) = send(
        c,
        &hook,
        &shopify_headers("s3cret", &huge, "orders/create", "w-2"),
        &huge,
    )
    .await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["code"], "PAYLOAD_TOO_LARGE");
    // A verified body that is not JSON is accepted, then dead-lettered with the reason.
    let (s, _) = send(
        c,
        &hook,
        &shopify_headers("s3cret", b"<xml/>", "orders/create", "w-3"),
        b"<xml/>",
    )
    .await;
    assert_eq!(s, 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, dlq) = server.get_json("/tenants/default/dlq").await;
        if let Some(item) = dlq["items"].as_array().and_then(|a| a.first()) {
            assert_eq!(item["payload"], "<xml/>");
            assert!(
                item["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("not valid JSON")
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, events) = server.get_json("/tenants/default/events").await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_history_pages_with_a_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    for n in 0..5 {
        let (s, b) = server
            .post_json(
                "/tenants/default/events",
                &json!({"source": "app", "event": "ping", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(s, 202, "{b}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, all) = server.get_json("/tenants/default/events").await;
        if all["events"].as_array().map_or(0, Vec::len) == 5 {
            assert!(all["nextCursor"].is_null(), "{all}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "events never routed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut seen = Vec::new();
    let mut path = "/tenants/default/events?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (s, page) = server.get_json(&path).await;
        assert_eq!(s, 200, "{page}");
        pages += 1;
        for e in page["events"].as_array().expect("events") {
            seen.push(e["eventId"].as_str().expect("id").to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/tenants/default/events?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
    let (s, b) = server.get_json("/tenants/default/events?cursor=zz").await;
    assert_eq!((s, b["code"].as_str()), (400, Some("BAD_REQUEST")));
    // An empty cursor is refused rather than read as an empty last page.
    for path in [
        "/tenants/default/events?cursor=",
        "/tenants/default/executions?cursor=",
    ] {
        let (s, b) = server.get_json(path).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{path}"
        );
    }
}
