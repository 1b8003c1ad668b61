//! Start-up and shutdown wiring: open the store, bootstrap, start the actors, resume unfinished
//! executions, serve HTTP until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ractor::Actor;
use sluice_actors::connector::ActionInvoker;
use sluice_actors::engine::Engine;
use sluice_actors::runtime::{RootArgs, RootMsg, RootSupervisor};
use sluice_actors::sync::SyncRunner;
use sluice_storage::{Durability, Store, StoreOptions};

use crate::cli::ServeArgs;
use crate::connectors::{ConnectorInvoker, NetPolicy, Vault};
use crate::http::{self, AppState};
use crate::{bootstrap, observability};

/// Outbox entries in flight between the relay and the tenants.
const RELAY_IN_FLIGHT: usize = 1024;

/// Runs the server until a shutdown signal.
///
/// # Errors
/// Start-up failures: the data directory, the listen address, the metrics recorder.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = observability::install_metrics()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let options = StoreOptions {
        durability: if args.unsafe_buffered_writes {
            Durability::Buffered
        } else {
            Durability::Fsync
        },
        ..StoreOptions::default()
    };
    let store = Store::open(&args.data_dir, options)
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    bootstrap::ensure(&store).await?;

    let vault = Arc::new(Vault::open(&args.data_dir).context("opening the master key")?);
    let policy = NetPolicy {
        allow_private: args.allow_private_networks,
    };
    let invoker: Arc<dyn ActionInvoker> =
        Arc::new(ConnectorInvoker::new(store.clone(), vault.clone(), policy)?);
    let engine = Arc::new(Engine::new(store.clone(), invoker.clone()));
    let sync = SyncRunner::new(store.clone(), invoker, engine.id_maps().clone());
    let (root, root_handle) = Actor::spawn(
        Some("sluice-root".into()),
        RootSupervisor,
        RootArgs {
            store: store.clone(),
            engine,
            tenant_concurrency: args.tenant_concurrency,
            relay_in_flight: RELAY_IN_FLIGHT,
        },
    )
    .await
    .context("starting the root supervisor")?;
    let unfinished = store.unfinished_executions()?;
    if !unfinished.is_empty() {
        tracing::info!(count = unfinished.len(), "resuming unfinished executions");
    }
    for exec in unfinished {
        root.cast(RootMsg::Resume(Box::new(exec)))?;
    }

    let state = AppState {
        store,
        root: root.clone(),
        metrics,
        max_webhook_bytes: args.max_webhook_bytes,
        vault,
        sync,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, data_dir = %args.data_dir.display(), "sluice listening");
    println!("Listening on http://{local}");
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;

    tracing::info!("shutting down: stopping actors");
    root.stop(Some("shutdown".into()));
    // Executions still running are journaled step by step and resume at the next start.
    let _ = tokio::time::timeout(Duration::from_secs(10), root_handle).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
