use std::net::IpAddr;
use std::sync::Arc;

use affinity_engine::{Engine, EngineError, GeneratedCredential};

use crate::rate_limit::RateLimiter;
use crate::{Limits, ServerConfig};

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub limits: Arc<Limits>,
    /// Tracking requests per source address and per write key.
    pub ip_rate: Arc<RateLimiter<IpAddr>>,
    pub key_rate: Arc<RateLimiter<String>>,
}

impl AppState {
    /// Opens the engine (store, writer, credentials) in the configured data directory.
    pub fn open(config: &ServerConfig) -> Result<(Self, Vec<GeneratedCredential>), EngineError> {
        let (engine, generated) = Engine::open(&config.engine)?;
        let limits = config.limits.clone();
        Ok((
            Self {
                engine,
                ip_rate: Arc::new(RateLimiter::new(limits.ip_requests_per_second)),
                key_rate: Arc::new(RateLimiter::new(limits.write_key_requests_per_second)),
                limits: Arc::new(limits),
            },
            generated,
        ))
    }
}
