//! The catalog: its configuration, the most recently built catalog (shared by every reader)
//! and the background build that refreshes it, uploads of catalog files, and the catalog
//! queries pickers use. Builds read the store on a blocking thread, never on an async one.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::{Map, Value};

use affinity_core::catalog::{CatalogConfig, ITEM_ID};
use affinity_core::item_catalog::{CatalogBuilder, ItemCatalog};
use affinity_core::mapping_check::{ObservedKeys, empty_mappings, unseen_properties, why_empty};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, EventDiscovery, StoreError};

use crate::Engine;
pub use crate::catalog_file::FileFormat;
use crate::catalog_file::{self, CatalogFile};
use crate::clock::now_ms;
use crate::engine::blocking;
use crate::error::{EngineError, Invalid, Problem, Result};
use crate::sync::{read, write};

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
    /// Mappings the last build found nothing with (and why it has no items, when so).
    pub warnings: Vec<Problem>,
    /// Every column of the built catalog, mapped or only uploaded, with counts.
    pub columns: Vec<ColumnSummary>,
}

/// Where a column of the built catalog comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    /// Mapped in the configuration (and perhaps also uploaded).
    Mapped,
    /// Only in uploaded catalog files.
    Uploaded,
}

impl ColumnSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mapped => "mapped",
            Self::Uploaded => "uploaded",
        }
    }
}

/// A column of the built catalog: how many items hold a value, how many distinct values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSummary {
    pub name: String,
    pub source: ColumnSource,
    pub items: usize,
    pub values: usize,
}

fn column_summaries(catalog: &ItemCatalog) -> Vec<ColumnSummary> {
    catalog
        .column_names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let index = catalog.column_index(c);
            ColumnSummary {
                name: name.clone(),
                source: if catalog.config.columns.iter().any(|m| &m.name == name) {
                    ColumnSource::Mapped
                } else {
                    ColumnSource::Uploaded
                },
                items: index.of_item.iter().filter(|v| !v.is_empty()).count(),
                values: index.values.len(),
            }
        })
        .collect()
}

/// The current snapshot and the number of the newest build requested: a slow, older build
/// never overwrites a newer one.
struct Current {
    generation: u64,
    snapshot: CatalogSnapshot,
}

/// Shared catalog state.
#[derive(Clone)]
pub struct CatalogState {
    inner: Arc<RwLock<Current>>,
}

/// What is worth a look in a valid configuration, judged against the events received so far
/// (call from a blocking thread): events never received, and mappings naming a property their
/// event never carried, with the closest keys it does carry.
pub fn configuration_warnings(store: &SqliteStore, config: &CatalogConfig) -> Result<Vec<Problem>> {
    let observed = config
        .events
        .iter()
        .map(|e| {
            Ok(store.event(&e.name)?.map(|summary| ObservedKeys {
                messages: summary.count,
                keys: summary.properties.into_iter().map(|(k, _)| k).collect(),
                at_limit: summary.properties_at_limit,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut warnings: Vec<Problem> = config
        .events
        .iter()
        .zip(&observed)
        .enumerate()
        .filter(|(_, (_, seen))| seen.is_none())
        .map(|(i, (e, _))| {
            Problem::new(
                format!("events[{i}].name"),
                format!(
                    "no {:?} event has been received yet; it will count once it arrives",
                    e.name
                ),
            )
        })
        .collect();
    warnings.extend(
        unseen_properties(config, &observed)
            .into_iter()
            .map(Problem::from),
    );
    Ok(warnings)
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

impl CatalogState {
    pub fn new(configured: bool) -> Self {
        let status = if configured {
            BuildStatus::Building
        } else {
            BuildStatus::NotConfigured
        };
        Self {
            inner: Arc::new(RwLock::new(Current {
                generation: 0,
                snapshot: CatalogSnapshot {
                    status,
                    catalog: None,
                    built_at: None,
                    build_ms: None,
                    error: None,
                    warnings: Vec::new(),
                    columns: Vec::new(),
                },
            })),
        }
    }

    pub fn snapshot(&self) -> CatalogSnapshot {
        read(&self.inner).snapshot.clone()
    }

    /// Starts a background build and returns at once; the state says `building` meanwhile.
    pub fn rebuild(&self, store: SqliteStore) {
        let generation = {
            let mut g = write(&self.inner);
            g.generation += 1;
            g.snapshot.status = BuildStatus::Building;
            g.generation
        };
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = build_now(&store).map(|c| c.map(Arc::new));
            state.publish(generation, result, started.elapsed().as_millis() as u64);
        });
    }

    /// Builds on the calling (blocking) thread and publishes the result unless a newer build
    /// was requested meanwhile; returns the catalog built. An upload waits for this, so its
    /// items and columns are targetable as soon as it is answered.
    pub fn rebuild_now(&self, store: &SqliteStore) -> Result<Option<Arc<ItemCatalog>>> {
        let generation = {
            let mut g = write(&self.inner);
            g.generation += 1;
            g.snapshot.status = BuildStatus::Building;
            g.generation
        };
        let started = Instant::now();
        let result = build_now(store).map(|c| c.map(Arc::new));
        let built = result.as_ref().ok().cloned().flatten();
        let failed = result.as_ref().err().map(ToString::to_string);
        self.publish(generation, result, started.elapsed().as_millis() as u64);
        match failed {
            Some(e) => Err(EngineError::CatalogFailed(e)),
            None => Ok(built),
        }
    }

    /// Records a finished build unless a newer one was requested meanwhile.
    fn publish(
        &self,
        generation: u64,
        result: Result<Option<Arc<ItemCatalog>>, StoreError>,
        ms: u64,
    ) {
        // Summarized before the lock is taken: readers never wait for the column counts.
        let result = result.map(|c| c.map(|c| ready(c, ms)));
        let mut g = write(&self.inner);
        if g.generation != generation {
            return;
        }
        match result {
            Ok(Some(snapshot)) => g.snapshot = snapshot,
            Ok(None) => g.snapshot.status = BuildStatus::NotConfigured,
            Err(e) => {
                tracing::error!(error = %e, "catalog build failed");
                g.snapshot.status = BuildStatus::Failed;
                g.snapshot.error = Some(e.to_string());
            }
        }
    }

    /// Publishes a catalog built elsewhere (by a training run) as the current one.
    pub fn replace(&self, catalog: Arc<ItemCatalog>, build_ms: u64) {
        let snapshot = ready(catalog, build_ms);
        let mut g = write(&self.inner);
        g.generation += 1;
        g.snapshot = snapshot;
    }

    /// The built catalog, or why there is none yet.
    pub fn built(&self) -> Result<Arc<ItemCatalog>> {
        let snap = self.snapshot();
        snap.catalog.ok_or(match snap.status {
            BuildStatus::NotConfigured => EngineError::NotConfigured,
            BuildStatus::Building | BuildStatus::Ready => EngineError::CatalogBuilding,
            BuildStatus::Failed => EngineError::CatalogFailed(snap.error.unwrap_or_default()),
        })
    }
}

fn ready(catalog: Arc<ItemCatalog>, build_ms: u64) -> CatalogSnapshot {
    tracing::info!(
        items = catalog.items.len(),
        users = catalog.users.len(),
        interactions = catalog.interactions.len(),
        build_ms,
        "catalog built"
    );
    let mut warnings: Vec<Problem> = Vec::new();
    if catalog.items.is_empty() {
        warnings.push(Problem::new("events", why_empty(&catalog)));
    }
    warnings.extend(empty_mappings(&catalog).into_iter().map(Problem::from));
    CatalogSnapshot {
        status: BuildStatus::Ready,
        columns: column_summaries(&catalog),
        catalog: Some(catalog),
        built_at: Some(now_ms()),
        build_ms: Some(build_ms),
        error: None,
        warnings,
    }
}

/// The index of `column` in `catalog` (None for the `item_id` pseudo-column).
pub fn column_of(catalog: &ItemCatalog, column: &str) -> Result<Option<usize>> {
    if column == ITEM_ID {
        return Ok(None);
    }
    catalog.column(column).map(Some).ok_or_else(|| {
        EngineError::NotFound(format!(
            "no column {column:?}; the catalog has: item_id, {}",
            catalog.column_names.join(", ")
        ))
    })
}

/// One value of a column with how many items hold it and how many users engaged with those.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnValue {
    pub value: Value,
    pub items: u64,
    pub users: u64,
}

/// One item's columns and counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemDetail {
    pub item_id: String,
    pub columns: Map<String, Value>,
    pub interactions: u64,
    pub users: usize,
    /// Interactions by event name, in the catalog's event order.
    pub by_event: Vec<(String, u64)>,
    pub last_interaction: Option<i64>,
}

/// What an accepted catalog file did.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub items: usize,
    pub format: FileFormat,
    /// Rows for items the catalog did not have before.
    pub new_items: usize,
    /// Columns the catalog did not have before, in the file's order.
    pub new_columns: Vec<String>,
    /// The catalog was rebuilt with the rows before the answer (else a build failed or is
    /// not configured: the rows are stored and join at the next build).
    pub built: bool,
}

/// What `set_catalog` accepted, with warnings about events not seen yet and mappings naming
/// properties their event never carried.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogSaved {
    pub warnings: Vec<Problem>,
}

impl Engine {
    pub fn catalog_snapshot(&self) -> CatalogSnapshot {
        self.catalog.snapshot()
    }

    /// The built catalog, or why there is none yet.
    pub fn built_catalog(&self) -> Result<Arc<ItemCatalog>> {
        self.catalog.built()
    }

    pub async fn catalog_config(&self) -> Result<Option<CatalogConfig>> {
        let store = self.store.clone();
        blocking(move || Ok(store.catalog_config()?)).await
    }

    /// Validates (every problem at once), stores and starts a rebuild.
    pub async fn set_catalog(&self, config: CatalogConfig) -> Result<CatalogSaved> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(EngineError::invalid(Invalid::Catalog, problems));
        }
        let store = self.store.clone();
        let saved = config.clone();
        let warnings = blocking(move || {
            store.set_catalog_config(&saved)?;
            configuration_warnings(&store, &saved)
        })
        .await?;
        self.catalog.rebuild(self.store.clone());
        Ok(CatalogSaved { warnings })
    }

    /// Values of `column` (or item ids for `item_id`), most engaged first.
    pub async fn column_values(
        &self,
        column: &str,
        prefix: Option<String>,
        limit: usize,
    ) -> Result<Vec<ColumnValue>> {
        let catalog = self.built_catalog()?;
        let index = column_of(&catalog, column)?;
        blocking(move || {
            Ok(match index {
                Some(c) => catalog
                    .column_values(c, prefix.as_deref(), limit)
                    .into_iter()
                    .map(|v| ColumnValue {
                        value: v.value,
                        items: v.items,
                        users: v.users,
                    })
                    .collect(),
                None => item_values(&catalog, prefix.as_deref(), limit),
            })
        })
        .await
    }

    /// One item's columns and counts.
    pub async fn item(&self, item_id: String) -> Result<ItemDetail> {
        let catalog = self.built_catalog()?;
        blocking(move || item_detail(&catalog, item_id)).await
    }

    /// Parses a catalog file (all rows or none), stores its rows and rebuilds the catalog
    /// before answering: the new items and columns can be targeted and read at once, with
    /// no retraining.
    pub async fn upload_items(&self, bytes: Vec<u8>, hint: Option<FileFormat>) -> Result<Upload> {
        let store = self.store.clone();
        let state = self.catalog.clone();
        let before = self.catalog.snapshot().catalog;
        blocking(move || {
            let CatalogFile { rows, format } = catalog_file::parse(bytes, hint)?;
            let known_item = |id: &str| before.as_ref().is_some_and(|c| c.item_index(id).is_some());
            let known_column =
                |name: &str| before.as_ref().is_some_and(|c| c.column(name).is_some());
            let new_items = rows.iter().filter(|(id, _)| !known_item(id)).count();
            let mut new_columns: Vec<String> = Vec::new();
            for name in rows.iter().flat_map(|(_, columns)| columns.keys()) {
                if !known_column(name) && !new_columns.contains(name) {
                    new_columns.push(name.clone());
                }
            }
            let items = store.upload_items(&rows, now_ms())?;
            let built = match state.rebuild_now(&store) {
                Ok(built) => built.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "catalog build after an upload failed");
                    false
                }
            };
            Ok(Upload {
                items,
                format,
                new_items,
                new_columns,
                built,
            })
        })
        .await
    }
}

/// Values of the `item_id` pseudo-column: item ids with their user counts.
fn item_values(catalog: &ItemCatalog, prefix: Option<&str>, limit: usize) -> Vec<ColumnValue> {
    let mut users: Vec<HashSet<u32>> = vec![HashSet::new(); catalog.items.len()];
    for x in &catalog.interactions {
        users[x.item as usize].insert(x.user);
    }
    let prefix = prefix.map(str::to_lowercase);
    let mut rows: Vec<(u64, &String)> = catalog
        .items
        .iter()
        .enumerate()
        .filter(|(_, id)| {
            prefix
                .as_ref()
                .is_none_or(|p| id.to_lowercase().starts_with(p.as_str()))
        })
        .map(|(i, id)| (users[i].len() as u64, id))
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    rows.into_iter()
        .take(limit)
        .map(|(n, id)| ColumnValue {
            value: Value::String(id.clone()),
            items: 1,
            users: n,
        })
        .collect()
}

fn item_detail(catalog: &ItemCatalog, item_id: String) -> Result<ItemDetail> {
    let Some(index) = catalog.item_index(&item_id) else {
        return Err(EngineError::NotFound(format!(
            "no item {item_id:?} in the catalog"
        )));
    };
    let columns: Map<String, Value> = catalog
        .column_names
        .iter()
        .zip(&catalog.values[index as usize])
        .map(|(name, v)| (name.clone(), v.clone().unwrap_or(Value::Null)))
        .collect();
    let mut users = HashSet::new();
    let mut by_event = vec![0u64; catalog.config.events.len()];
    let mut last = None;
    for x in catalog.interactions.iter().filter(|x| x.item == index) {
        users.insert(x.user);
        by_event[x.event as usize] += 1;
        last = Some(x.timestamp);
    }
    Ok(ItemDetail {
        item_id,
        columns,
        interactions: by_event.iter().sum(),
        users: users.len(),
        by_event: catalog
            .config
            .events
            .iter()
            .zip(by_event)
            .map(|(e, n)| (e.name.clone(), n))
            .collect(),
        last_interaction: last,
    })
}
