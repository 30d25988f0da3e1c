use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const WRITE_KEY: &str = "wk_cli";
pub const ADMIN: &str = "adm_cli";

pub fn affinity() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_affinity"));
    c.env_remove("AFFINITY_WRITE_KEYS")
        .env_remove("AFFINITY_ADMIN_TOKEN")
        .env_remove("AFFINITY_PROFILE_TOKEN")
        .env_remove("AFFINITY_LISTEN")
        .env_remove("AFFINITY_DATA_DIR")
        .env("RUST_LOG", "warn");
    c
}

/// A running `affinity serve` child process.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Lines printed before "listening" (the first-start credentials).
    pub banner: Vec<String>,
}

/// A test that fails midway must not leave its server running (over a deleted data dir).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `affinity serve` on port 0 with the given data dir; keys from the environment
    /// unless `generate_keys`.
    pub fn start(data_dir: &Path, generate_keys: bool) -> Server {
        Self::start_configured(data_dir, generate_keys, &[])
    }

    /// Starts `affinity serve` with the test keys and extra `AFFINITY_*` settings.
    pub fn start_with(data_dir: &Path, settings: &[(&str, &str)]) -> Server {
        Self::start_configured(data_dir, false, settings)
    }

    fn start_configured(data_dir: &Path, generate_keys: bool, settings: &[(&str, &str)]) -> Server {
        let mut cmd = affinity();
        cmd.envs(settings.iter().copied());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !generate_keys {
            cmd.env("AFFINITY_WRITE_KEYS", WRITE_KEY)
                .env("AFFINITY_ADMIN_TOKEN", ADMIN);
        }
        let mut child = cmd.spawn().expect("spawn affinity serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let base = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read");
            if let Some(rest) = line.strip_prefix("Affinity listening on ") {
                break rest.split_whitespace().next().expect("url").to_string();
            }
            banner.push(line);
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            banner,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not stop within 5 s of SIGTERM");
    }
}
