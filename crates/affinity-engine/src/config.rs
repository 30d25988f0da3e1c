use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Clock;

/// The engine's settings, after the binary has layered defaults, `affinity.toml`,
/// `AFFINITY_*` variables and flags.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Write keys, one per source. Empty: use the stored ones, or generate one.
    pub write_keys: Vec<String>,
    /// Admin token for the management API. None: use the stored one, or generate one.
    pub admin_token: Option<String>,
    /// Profile API token. None: use the stored one, or generate one.
    pub profile_token: Option<String>,
    /// How often the schedule retrains when new events arrived.
    pub retrain_interval: Duration,
    /// Seed for training runs and audiences that do not name one.
    pub seed: u64,
    /// Bounds on background work (audiences, previews, propensity contexts).
    pub work: WorkLimits,
    /// How often the schedule looks for `daily` audiences whose newest snapshot is a day old.
    pub audience_refresh_check: Duration,
    /// The clock that decides when a `daily` audience is due and stamps snapshots.
    pub clock: Clock,
    /// How messages reach destinations (retries, deadline, export directory).
    pub delivery: DeliverySettings,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./affinity-data"),
            write_keys: Vec::new(),
            admin_token: None,
            profile_token: None,
            retrain_interval: Duration::from_secs(3600),
            seed: 42,
            work: WorkLimits::default(),
            audience_refresh_check: Duration::from_secs(60),
            clock: Clock::default(),
            delivery: DeliverySettings::default(),
        }
    }
}

/// How much background work admin requests can start: a flood of audience creations or
/// previews waits in a short queue or is refused with a retry time, instead of taking every
/// core, thread and megabyte of the serving process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkLimits {
    /// Audience snapshots (creations and refreshes) computed at once. Each one already uses
    /// every core for its propensity fits, so more at once only adds memory and latency.
    pub audience_workers: usize,
    /// Snapshots accepted to wait for a worker (shown as `queued`); beyond, `429`.
    pub audience_queue: usize,
    /// Previews computed at once, beside the audience workers (an operator choosing a size
    /// does not wait behind a queue of snapshots).
    pub preview_workers: usize,
    /// Preview requests waiting for a worker (their clients wait with them); beyond, `429`.
    pub preview_queue: usize,
    /// Propensity contexts (one per `horizon_days`; each about 1 GB at 1M users, 113 MB at
    /// 100 000: two ALS user-factor tables and per-user activity, measured by
    /// `examples/audiences_scale`) kept per serving model; the least recently used is
    /// dropped beyond this.
    pub propensity_contexts: usize,
    /// The memory those contexts may hold together, MiB (as each counts itself); the least
    /// recently used are dropped beyond it, but one is always kept, and room is made before
    /// a build. 2 GiB keeps four of a 250 000-user store and two of a million-user one. It
    /// bounds what stays cached, not a build's working memory on top of it.
    pub propensity_context_mb: usize,
}

impl Default for WorkLimits {
    fn default() -> Self {
        Self {
            audience_workers: 1,
            audience_queue: 16,
            preview_workers: 1,
            preview_queue: 4,
            propensity_contexts: 4,
            propensity_context_mb: 2048,
        }
    }
}

/// How the outbox worker delivers messages to destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// `file` destinations write under this directory. None: `<data_dir>/exports`.
    pub export_dir: Option<PathBuf>,
    /// A message still failing this long after it was queued fails for good (Segment's
    /// destinations retry for about 4 hours).
    pub deadline: Duration,
    /// The first retry's delay; each further one doubles, up to `max_backoff`, jittered.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// One request's whole time, connection included.
    pub request_timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            export_dir: None,
            deadline: Duration::from_secs(4 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl EngineConfig {
    /// Where `file` destinations write.
    pub fn export_dir(&self) -> PathBuf {
        self.delivery
            .export_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("exports"))
    }
}
