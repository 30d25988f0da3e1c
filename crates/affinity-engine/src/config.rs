use std::path::PathBuf;
use std::time::Duration;

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
        }
    }
}
