//! The `email` connector's `send` action: a message built with `lettre` and sent to the SMTP
//! server of the step's `smtp` credential (STARTTLS by default, implicit TLS, or plain for
//! local relays; TLS is rustls).
//!
//! Input (strings are flow templates, rendered by the engine before this runs):
//! `{"from": "Shop <shop@example.com>", "to": "a@x" | ["a@x", …], "cc"?, "bcc"?,
//!   "subject": "…", "text"?: "…", "html"?: "…",
//!   "attachments"?: [{"filename": "invoice.pdf", "contentType": "application/pdf",
//!                     "contentBase64": "…"}]}`
//! Output: `{"messageId": "<…@sluice>", "accepted": [recipients], "response": [server lines]}`.
//! The SMTP host is checked against the network policy like any other destination.

use base64::Engine as _;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};
use sluice_actors::connector::{ActionCall, ActionError};

use super::credentials::{Auth, Opened};
use super::net_policy::{NetPolicy, denied};

fn bad(message: impl Into<String>) -> ActionError {
    ActionError::new(message, false)
}

fn addresses(input: &Value, field: &str) -> Result<Vec<Mailbox>, ActionError> {
    let list: Vec<&str> = match input.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(bad(format!("input.{field} must be an address or a list"))),
    };
    list.into_iter()
        .map(|a| {
            a.parse::<Mailbox>()
                .map_err(|e| bad(format!("input.{field}: {a:?} is not an address: {e}")))
        })
        .collect()
}

/// Builds the message of `input`; returns it with its Message-ID and recipients.
///
/// # Errors
/// Missing or malformed fields.
pub fn build(input: &Value) -> Result<(Message, String, Vec<String>), ActionError> {
    let from = addresses(input, "from")?
        .into_iter()
        .next()
        .ok_or_else(|| bad("input.from is required"))?;
    let (to, cc, bcc) = (
        addresses(input, "to")?,
        addresses(input, "cc")?,
        addresses(input, "bcc")?,
    );
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(bad("input.to is required"));
    }
    let subject = input.get("subject").and_then(Value::as_str).unwrap_or("");
    let message_id = format!("<{}@sluice>", uuid::Uuid::now_v7().simple());
    let mut b = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(message_id.clone()));
    let mut accepted = Vec::new();
    for m in &to {
        accepted.push(m.email.to_string());
        b = b.to(m.clone());
    }
    for m in &cc {
        accepted.push(m.email.to_string());
        b = b.cc(m.clone());
    }
    for m in &bcc {
        accepted.push(m.email.to_string());
        b = b.bcc(m.clone());
    }
    let text = input.get("text").and_then(Value::as_str);
    let html = input.get("html").and_then(Value::as_str);
    let content = match (text, html) {
        (Some(t), Some(h)) => MultiPart::alternative_plain_html(t.to_owned(), h.to_owned()),
        (None, Some(h)) => MultiPart::mixed().singlepart(SinglePart::html(h.to_owned())),
        (t, None) => MultiPart::mixed().singlepart(SinglePart::plain(t.unwrap_or("").to_owned())),
    };
    let mut body = MultiPart::mixed().multipart(content);
    if let Some(list) = input.get("attachments").and_then(Value::as_array) {
        for (i, a) in list.iter().enumerate() {
            let name = a
                .get("filename")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("attachments[{i}].filename is required")))?;
            let ct = a
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream");
            let ct = ContentType::parse(ct)
                .map_err(|e| bad(format!("attachments[{i}].contentType: {e}")))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(a.get("contentBase64").and_then(Value::as_str).unwrap_or(""))
                .map_err(|e| bad(format!("attachments[{i}].contentBase64: {e}")))?;
            body = body.singlepart(Attachment::new(name.to_owned()).body(bytes, ct));
        }
    }
    let message = b
        .multipart(body)
        .map_err(|e| bad(format!("cannot build the message: {e}")))?;
    Ok((message, message_id, accepted))
}

/// Sends the email of `call` through the credential's SMTP server.
///
/// # Errors
/// A missing or non-SMTP credential, a refused destination, a malformed message, or the
/// server's refusal (transient refusals and connection failures are retryable).
pub async fn send(
    policy: NetPolicy,
    opened: Option<&Opened>,
    call: &ActionCall,
) -> Result<Value, ActionError> {
    let Some(Auth::Smtp {
        host,
        port,
        tls,
        username,
        password,
    }) = opened.map(|o| &o.auth)
    else {
        return Err(bad("email.send needs an smtp credential"));
    };
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .map_err(|e| ActionError::new(format!("cannot resolve {host}: {e}"), true))?
        .collect();
    if let Some(a) = addrs.iter().find(|a| !policy.allows(a.ip())) {
        return Err(bad(denied(a.ip())));
    }
    let (message, message_id, accepted) = build(&call.input)?;
    let builder = match tls.as_deref().unwrap_or("starttls") {
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str()),
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|e| bad(format!("TLS setup: {e}")))?,
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| bad(format!("TLS setup: {e}")))?,
        other => {
            return Err(bad(format!(
                "unknown tls mode {other:?} (starttls, tls, none)"
            )));
        }
    };
    let mut builder = builder.port(*port).timeout(Some(call.timeout));
    if let (Some(u), Some(p)) = (username, password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    let transport = builder.build();
    match transport.send(message).await {
        Ok(resp) => Ok(json!({
            "messageId": message_id,
            "accepted": accepted,
            "response": resp.message().map(str::to_owned).collect::<Vec<_>>(),
        })),
        Err(e) => Err(ActionError {
            debug: Some(json!({"error": e.to_string()})),
            ..ActionError::new(format!("SMTP: {e}"), !e.is_permanent())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_multipart_with_attachment_and_refuses_bad_input() {
        let (m, id, accepted) = build(&json!({
            "from": "Shop <shop@example.com>", "to": ["a@example.com"], "cc": "c@example.com",
            "subject": "Invoice 7", "text": "hello", "html": "<b>hello</b>",
            "attachments": [{"filename": "i.txt", "contentType": "text/plain", "contentBase64": "aGk="}]
        }))
        .expect("build");
        let raw = String::from_utf8(m.formatted()).expect("utf8");
        assert!(raw.contains("Subject: Invoice 7"), "{raw}");
        assert!(raw.contains(&id));
        assert!(raw.contains("filename=\"i.txt\""), "{raw}");
        assert_eq!(accepted, ["a@example.com", "c@example.com"]);
        assert!(build(&json!({"to": "a@example.com"})).is_err());
        assert!(build(&json!({"from": "x@example.com", "to": "not an address"})).is_err());
    }
}
