use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The server's settings, after the binary has layered defaults, `affinity.toml`,
/// `AFFINITY_*` variables and flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Write keys, one per source. Empty: use the stored ones, or generate one.
    pub write_keys: Vec<String>,
    /// Admin token for `/api/v1`. None: use the stored one, or generate one.
    pub admin_token: Option<String>,
    /// Profile API token. None: use the stored one, or generate one.
    pub profile_token: Option<String>,
    pub retrain_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./affinity-data"),
            write_keys: Vec::new(),
            admin_token: None,
            profile_token: None,
            retrain_interval: Duration::from_secs(3600),
        }
    }
}
