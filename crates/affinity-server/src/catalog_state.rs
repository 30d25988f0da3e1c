//! The most recently built catalog, shared by handlers, and the background build that
//! refreshes it. Builds read the store on a blocking thread, never on the async runtime.

use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use affinity_core::item_catalog::{CatalogBuilder, ItemCatalog};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    NotConfigured,
    Building,
    Ready,
    Failed,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::Building => "building",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone)]
pub struct CatalogSnapshot {
    pub status: BuildStatus,
    pub catalog: Option<Arc<ItemCatalog>>,
    pub built_at: Option<i64>,
    pub build_ms: Option<u64>,
    pub error: Option<String>,
}

/// Shared catalog state. `generation` increases with every requested build so that a slow,
/// older build never overwrites a newer one.
#[derive(Clone)]
pub struct CatalogState {
    inner: Arc<RwLock<(u64, CatalogSnapshot)>>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl CatalogState {
    pub fn new(configured: bool) -> Self {
        let status = if configured {
            BuildStatus::Building
        } else {
            BuildStatus::NotConfigured
        };
        Self {
            inner: Arc::new(RwLock::new((
                0,
                CatalogSnapshot {
                    status,
                    catalog: None,
                    built_at: None,
                    build_ms: None,
                    error: None,
                },
            ))),
        }
    }

    pub fn snapshot(&self) -> CatalogSnapshot {
        match self.inner.read() {
            Ok(g) => g.1.clone(),
            Err(p) => p.into_inner().1.clone(),
        }
    }

    /// Builds the catalog from the store synchronously (call from a blocking thread).
    pub fn build_now(store: &SqliteStore) -> Result<Option<ItemCatalog>, StoreError> {
        let Some(config) = store.catalog_config()? else {
            return Ok(None);
        };
        let mut builder = CatalogBuilder::new(config.clone());
        store.scan_interactions(&mut builder, &config)?;
        Ok(Some(builder.finish()))
    }

    /// Starts a background build and returns at once; the state says `building` meanwhile.
    pub fn rebuild(&self, store: SqliteStore) {
        let generation = {
            let mut g = match self.inner.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            g.0 += 1;
            g.1.status = BuildStatus::Building;
            g.0
        };
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = Self::build_now(&store);
            state.publish(generation, result, started.elapsed().as_millis() as u64);
        });
    }

    /// Records a finished build unless a newer one was requested meanwhile.
    pub fn publish(
        &self,
        generation: u64,
        result: Result<Option<ItemCatalog>, StoreError>,
        build_ms: u64,
    ) {
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.0 != generation {
            return;
        }
        match result {
            Ok(Some(catalog)) => {
                log_built(&catalog, build_ms);
                g.1 = CatalogSnapshot {
                    status: BuildStatus::Ready,
                    catalog: Some(Arc::new(catalog)),
                    built_at: Some(now_ms()),
                    build_ms: Some(build_ms),
                    error: None,
                };
            }
            Ok(None) => g.1.status = BuildStatus::NotConfigured,
            Err(e) => {
                tracing::error!(error = %e, "catalog build failed");
                g.1.status = BuildStatus::Failed;
                g.1.error = Some(e.to_string());
            }
        }
    }

    /// Publishes a catalog built elsewhere (by a training job) as the current one.
    pub fn replace(&self, catalog: Arc<ItemCatalog>, build_ms: u64) {
        log_built(&catalog, build_ms);
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.0 += 1;
        g.1 = CatalogSnapshot {
            status: BuildStatus::Ready,
            catalog: Some(catalog),
            built_at: Some(now_ms()),
            build_ms: Some(build_ms),
            error: None,
        };
    }
}

fn log_built(catalog: &ItemCatalog, build_ms: u64) {
    tracing::info!(
        items = catalog.items.len(),
        users = catalog.users.len(),
        interactions = catalog.interactions.len(),
        build_ms,
        "catalog built"
    );
}
