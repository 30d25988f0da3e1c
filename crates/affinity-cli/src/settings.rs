//! Settings layered as defaults → `affinity.toml` (or `--config FILE`) → `AFFINITY_*`
//! environment variables → command-line flags, each later layer winning. Every error names
//! where the bad value came from.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use affinity_server::ServerConfig;

pub const DEFAULT_FILE: &str = "affinity.toml";

/// The file's shape. Unknown keys are errors: a typo must not be silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    write_keys: Option<Vec<String>>,
    admin_token: Option<String>,
    profile_token: Option<String>,
    retrain_interval: Option<String>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    max_connections: Option<u64>,
    ip_requests_per_second: Option<u64>,
    write_key_requests_per_second: Option<u64>,
    audience_workers: Option<u64>,
    audience_queue: Option<u64>,
    preview_workers: Option<u64>,
    preview_queue: Option<u64>,
    propensity_contexts: Option<u64>,
    propensity_context_mb: Option<u64>,
    export_dir: Option<PathBuf>,
    delivery_deadline: Option<String>,
    delivery_backoff: Option<String>,
}

/// Flags that override the other layers.
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

pub fn load(
    file: Option<&Path>,
    flags: &Overrides,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::default();
    let (path, required) = match file {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_FILE), false),
    };
    if required || path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        let parsed: FileConfig = toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))?;
        let origin = path.display().to_string();
        apply(&mut config, parsed, &origin)?;
    }
    let from_env = FileConfig {
        listen: env("AFFINITY_LISTEN"),
        data_dir: env("AFFINITY_DATA_DIR").map(PathBuf::from),
        write_keys: env("AFFINITY_WRITE_KEYS").map(|v| {
            v.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        }),
        admin_token: env("AFFINITY_ADMIN_TOKEN"),
        profile_token: env("AFFINITY_PROFILE_TOKEN"),
        retrain_interval: env("AFFINITY_RETRAIN_INTERVAL"),
        header_read_timeout: env("AFFINITY_HEADER_READ_TIMEOUT"),
        body_read_timeout: env("AFFINITY_BODY_READ_TIMEOUT"),
        max_connections: number(&env, "AFFINITY_MAX_CONNECTIONS")?,
        ip_requests_per_second: number(&env, "AFFINITY_IP_REQUESTS_PER_SECOND")?,
        write_key_requests_per_second: number(&env, "AFFINITY_WRITE_KEY_REQUESTS_PER_SECOND")?,
        audience_workers: number(&env, "AFFINITY_AUDIENCE_WORKERS")?,
        audience_queue: number(&env, "AFFINITY_AUDIENCE_QUEUE")?,
        preview_workers: number(&env, "AFFINITY_PREVIEW_WORKERS")?,
        preview_queue: number(&env, "AFFINITY_PREVIEW_QUEUE")?,
        propensity_contexts: number(&env, "AFFINITY_PROPENSITY_CONTEXTS")?,
        propensity_context_mb: number(&env, "AFFINITY_PROPENSITY_CONTEXT_MB")?,
        export_dir: env("AFFINITY_EXPORT_DIR").map(PathBuf::from),
        delivery_deadline: env("AFFINITY_DELIVERY_DEADLINE"),
        delivery_backoff: env("AFFINITY_DELIVERY_BACKOFF"),
    };
    apply(&mut config, from_env, "the environment (AFFINITY_*)")?;
    let from_flags = FileConfig {
        listen: flags.listen.clone(),
        data_dir: flags.data_dir.clone(),
        ..FileConfig::default()
    };
    apply(&mut config, from_flags, "the command line")?;
    Ok(config)
}

fn number(env: &impl Fn(&str) -> Option<String>, name: &str) -> anyhow::Result<Option<u64>> {
    env(name)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .with_context(|| format!("{name}={v:?} is not a whole number"))
        })
        .transpose()
}

fn apply(config: &mut ServerConfig, layer: FileConfig, origin: &str) -> anyhow::Result<()> {
    if let Some(listen) = layer.listen {
        config.listen = listen.parse().with_context(|| {
            format!("listen address {listen:?} from {origin} is not HOST:PORT, e.g. 127.0.0.1:8080")
        })?;
    }
    if let Some(dir) = layer.data_dir {
        config.engine.data_dir = dir;
    }
    if let Some(keys) = layer.write_keys {
        if keys.iter().any(|k| k.trim().is_empty() || k.contains(',')) {
            bail!("write keys from {origin} must be non-empty and contain no commas");
        }
        config.engine.write_keys = keys;
    }
    for (name, value, slot) in [
        (
            "admin token",
            layer.admin_token,
            &mut config.engine.admin_token,
        ),
        (
            "profile token",
            layer.profile_token,
            &mut config.engine.profile_token,
        ),
    ] {
        if let Some(v) = value {
            if v.trim().is_empty() {
                bail!("the {name} from {origin} is empty; remove it to have one generated");
            }
            *slot = Some(v);
        }
    }
    let duration = |name: &str, text: &str| {
        humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| {
                format!("{name} {text:?} from {origin} is not a duration such as 10s or 1m")
            })
    };
    if let Some(t) = layer.header_read_timeout {
        config.limits.header_read_timeout = duration("header read timeout", &t)?;
    }
    if let Some(t) = layer.body_read_timeout {
        config.limits.body_read_timeout = duration("body read timeout", &t)?;
    }
    let positive = |name: &str, n: u64| {
        if n == 0 {
            bail!("{name} from {origin} must be at least 1");
        }
        Ok(n)
    };
    if let Some(n) = layer.max_connections {
        config.limits.max_connections = positive("max_connections", n)? as usize;
    }
    if let Some(n) = layer.ip_requests_per_second {
        config.limits.ip_requests_per_second =
            positive("ip_requests_per_second", n)?.min(u64::from(u32::MAX)) as u32;
    }
    if let Some(n) = layer.write_key_requests_per_second {
        config.limits.write_key_requests_per_second =
            positive("write_key_requests_per_second", n)?.min(u64::from(u32::MAX)) as u32;
    }
    // Queues may be 0 (no waiting: a request is computed at once or refused); workers and
    // contexts may not (nothing could ever run, or every audience would refit its context).
    let work = &mut config.engine.work;
    for (name, value, slot, at_least_one) in [
        (
            "audience_workers",
            layer.audience_workers,
            &mut work.audience_workers,
            true,
        ),
        (
            "audience_queue",
            layer.audience_queue,
            &mut work.audience_queue,
            false,
        ),
        (
            "preview_workers",
            layer.preview_workers,
            &mut work.preview_workers,
            true,
        ),
        (
            "preview_queue",
            layer.preview_queue,
            &mut work.preview_queue,
            false,
        ),
        (
            "propensity_contexts",
            layer.propensity_contexts,
            &mut work.propensity_contexts,
            true,
        ),
        (
            "propensity_context_mb",
            layer.propensity_context_mb,
            &mut work.propensity_context_mb,
            true,
        ),
    ] {
        if let Some(n) = value {
            let n = if at_least_one { positive(name, n)? } else { n };
            *slot = usize::try_from(n).unwrap_or(usize::MAX);
        }
    }
    if let Some(interval) = layer.retrain_interval {
        config.engine.retrain_interval = humantime::parse_duration(&interval).with_context(|| {
            format!(
                "retrain interval {interval:?} from {origin} is not a duration such as 1h or 30m"
            )
        })?;
    }
    if let Some(dir) = layer.export_dir {
        config.engine.delivery.export_dir = Some(dir);
    }
    let duration = |what: &str, text: &str| {
        humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| {
                format!("{what} {text:?} from {origin} is not a duration such as 4h or 500ms")
            })
    };
    if let Some(text) = layer.delivery_deadline {
        config.engine.delivery.deadline = duration("delivery deadline", &text)?;
    }
    if let Some(text) = layer.delivery_backoff {
        // The first retry's delay; later ones double from it.
        config.engine.delivery.initial_backoff = duration("delivery backoff", &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn later_layers_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\nretrain_interval = \"30m\"\n",
        )
        .expect("write");
        let env = env_of(&[
            ("AFFINITY_DATA_DIR", "/from/env"),
            ("AFFINITY_WRITE_KEYS", "a, b"),
        ]);
        let flags = Overrides {
            listen: Some("127.0.0.1:9100".into()),
            data_dir: None,
        };
        let c = load(Some(&file), &flags, env).expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.engine.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.engine.write_keys, vec!["a", "b"]);
        assert_eq!(c.engine.retrain_interval.as_secs(), 1800);
    }

    #[test]
    fn errors_name_the_source() {
        let env = env_of(&[("AFFINITY_LISTEN", "nowhere")]);
        let e = load(None, &Overrides::default(), env).expect_err("invalid");
        assert!(format!("{e:#}").contains("the environment"), "{e:#}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("b.toml");
        std::fs::write(&file, "listn = \"x\"\n").expect("write");
        let e = load(Some(&file), &Overrides::default(), env_of(&[])).expect_err("typo");
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
    }

    #[test]
    fn work_limits_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("w.toml");
        std::fs::write(
            &file,
            "audience_workers = 2\naudience_queue = 0\npropensity_contexts = 8\n\
             propensity_context_mb = 512\n",
        )
        .expect("write");
        let env = env_of(&[("AFFINITY_PREVIEW_QUEUE", "9")]);
        let c = load(Some(&file), &Overrides::default(), env).expect("valid");
        let w = &c.engine.work;
        assert_eq!(
            (
                w.audience_workers,
                w.audience_queue,
                w.preview_workers,
                w.preview_queue,
                w.propensity_contexts,
                w.propensity_context_mb
            ),
            (2, 0, 1, 9, 8, 512)
        );
        let env = env_of(&[("AFFINITY_AUDIENCE_WORKERS", "0")]);
        let e = load(None, &Overrides::default(), env).expect_err("no workers");
        assert!(format!("{e:#}").contains("audience_workers"), "{e:#}");
    }
}
