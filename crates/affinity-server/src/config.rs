use std::net::SocketAddr;

use affinity_engine::EngineConfig;

/// The server's settings: where to listen, and the engine's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub engine: EngineConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            engine: EngineConfig::default(),
        }
    }
}
