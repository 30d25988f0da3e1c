use anyhow::Context;

use affinity_server::{AppState, ServerConfig, serve};

pub fn run(config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async move {
        let (state, generated) = AppState::open(&config).with_context(|| {
            format!(
                "cannot open the store in {}",
                config.engine.data_dir.display()
            )
        })?;
        if !generated.is_empty() {
            println!(
                "First start: generated credentials (stored in {}; shown only now):",
                config.engine.data_dir.display()
            );
            for c in &generated {
                println!("  {:<14} {}", c.name, c.value);
            }
            println!("Send events with the write key as HTTP Basic user: curl -u WRITE_KEY: ...");
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        println!(
            "Affinity listening on http://{addr} (data in {})",
            config.engine.data_dir.display()
        );
        serve(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped: in-flight requests finished, queued writes committed");
        Ok(())
    });
    // Training runs and trait computations run on blocking threads and may take minutes; a
    // stop does not wait for them. Nothing is lost: acknowledged events are durable, an
    // interrupted run is marked failed at the next start (which trains again), and a trait
    // keeps its previous values until a complete run replaces them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    outcome
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
    tracing::info!("shutting down: finishing in-flight requests");
}
