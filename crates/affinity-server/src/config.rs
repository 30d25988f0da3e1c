use std::net::SocketAddr;
use std::time::Duration;

use affinity_engine::EngineConfig;

/// The server's settings: where to listen, how much any one client may take, and the
/// engine's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
    pub engine: EngineConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: Limits::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// Bounds on what clients can hold: a slow or hostile client costs a bounded share of the
/// server, and the rest keep being answered.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection must deliver a request's headers within this time, and an idle
    /// keep-alive connection is closed after it (slow-header clients, idle floods).
    pub header_read_timeout: Duration,
    /// A request body must arrive within this time (a client dripping a body is cut off).
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's queue. Well above normal
    /// concurrency, well below the file descriptors a process gets.
    pub max_connections: usize,
    /// Tracking requests per second per source IP address (a burst of this size is allowed).
    pub ip_requests_per_second: u32,
    /// Tracking requests per second per write key.
    pub write_key_requests_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            // Generous: one server ingests ~50–90k messages/s in batches of up to 2,500, so
            // request rates this high come only from a broken or hostile client.
            ip_requests_per_second: 5_000,
            write_key_requests_per_second: 20_000,
        }
    }
}
