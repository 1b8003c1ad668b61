//! The baseline: a bare axum server that reads the body and answers 202, built in the same
//! workspace and loaded by the same generator, so that every Sluice figure can be reported as
//! a ratio to it (absolute numbers drift on shared machines; ratios travel).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;

/// Serves the baseline on `listen` until the process ends; returns the bound address through
/// `ready` once listening.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    ready: tokio::sync::oneshot::Sender<SocketAddr>,
) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/api/v1/clients/{space}/webhooks/{id}",
        post(|body: Bytes| async move {
            (
                StatusCode::ACCEPTED,
                format!(
                    "{{\"eventId\":\"evt\",\"duplicate\":false,\"bytes\":{}}}",
                    body.len()
                ),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let _ = ready.send(listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
