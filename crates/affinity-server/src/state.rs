use affinity_engine::{Engine, EngineError, GeneratedCredential};

use crate::ServerConfig;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
}

impl AppState {
    /// Opens the engine (store, writer, credentials) in the configured data directory.
    pub fn open(config: &ServerConfig) -> Result<(Self, Vec<GeneratedCredential>), EngineError> {
        let (engine, generated) = Engine::open(&config.engine)?;
        Ok((Self { engine }, generated))
    }
}
