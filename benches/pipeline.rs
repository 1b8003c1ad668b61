#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Hot-path micro-benchmarks: signature verification, idempotency keys, normalization,
//! template rendering and the record codec. Run with `cargo bench --bench pipeline`.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use sluice_actors::mapping::template::Template;
use sluice_actors::pipeline::idempotency::{delivery_id, idempotency_key};
use sluice_actors::pipeline::signature::{Scheme, sign, verify};
use sluice_actors::pipeline::{Headers, normalize};
use sluice_storage::OutboxEntry;
use sluice_storage::codec::{decode, encode};

fn order_body() -> Vec<u8> {
    let items: Vec<_> = (0..20)
        .map(|i| json!({"id": i, "sku": format!("SKU-{i}"), "quantity": 1, "price": "19.99"}))
        .collect();
    serde_json::to_vec(&json!({
        "id": 820982911946154508u64, "email": "jon@example.com", "total_price": "403.00",
        "customer": {"email": "john@example.com", "first_name": "John"}, "line_items": items
    }))
    .expect("json")
}

fn entry(body: Vec<u8>) -> OutboxEntry {
    OutboxEntry {
        seq: 1,
        event_id: "evt_1".into(),
        space_id: "sp".into(),
        tenant_id: "acme".into(),
        webhook_id: "wh".into(),
        connector: "shopify".into(),
        headers: vec![("x-shopify-topic".into(), "orders/create".into())],
        body,
        body_in_blob: false,
        received_at_ms: 1,
        priority: 2,
        idempotency_key: "k".into(),
        attempt: 1,
        replay_of: None,
    }
}

fn benches(c: &mut Criterion) {
    let body = order_body();
    for scheme in [
        Scheme::Shopify,
        Scheme::GitHub,
        Scheme::Stripe,
        Scheme::Standard,
    ] {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let headers = Headers::new(sign(scheme, secret, &body, 1_700_000_000, "msg_1"));
        c.bench_function(&format!("verify/{scheme:?}"), |b| {
            b.iter(|| verify(scheme, secret, &headers, &body, 1_700_000_000))
        });
    }
    let headers = Headers::new([("x-shopify-webhook-id".to_owned(), "abc".to_owned())]);
    c.bench_function("idempotency_key", |b| {
        b.iter(|| idempotency_key("acme", "shopify", &delivery_id("shopify", &headers, &body)))
    });
    let e = entry(body.clone());
    c.bench_function("normalize/shopify_order", |b| {
        b.iter(|| normalize(&e, &e.body))
    });
    let ctx = json!({"trigger": serde_json::from_slice::<serde_json::Value>(&body).expect("json")});
    let t = Template::parse("{{trigger.customer.email}} bought {{trigger.line_items[3].sku}}")
        .expect("template");
    c.bench_function("template/render", |b| b.iter(|| t.render(&ctx)));
    c.bench_function("codec/encode_outbox_entry", |b| b.iter(|| encode(&e)));
    let mut lanes = sluice_actors::runtime::PriorityLanes::new(1 << 20);
    let mut p = 0u8;
    c.bench_function("mailbox/push_pop", |b| {
        b.iter(|| {
            p = p % 4 + 1;
            let _ = lanes.push(p, 7u64);
            lanes.pop()
        })
    });
    let bytes = encode(&e).expect("encode");
    c.bench_function("codec/decode_outbox_entry", |b| {
        b.iter(|| decode::<OutboxEntry>(&bytes))
    });
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
