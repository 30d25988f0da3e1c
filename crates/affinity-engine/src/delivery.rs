//! The outbox worker: delivers the pending messages of each destination, at least once.
//!
//! One task per destination, so a slow or unreachable receiver holds up only itself. A task
//! reads due rows, sends them (a webhook's `batch_size` per request, a few requests at once),
//! and records the outcomes of a few waves of requests together; a row is marked delivered
//! only after the receiver's 2xx, so a crash at any point resends at most what was in flight
//! or awaiting its record ([`RECORD_WAVES`]). Network errors, timeouts, 408, 429
//! (honouring `Retry-After`, seconds or a date) and 5xx are retried with jittered exponential backoff until the
//! deadline counted from when the message was queued; any other answer fails the message at
//! once, recorded with the receiver's status. A stop lets the requests in flight finish for
//! a moment ([`STOP_GRACE`]) and leaves everything else pending for the next start.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use affinity_core::destination::{DestinationConfig, FileFormat};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{DeliveryOutcome, DestinationStore, OutboxRow};

use crate::Engine;
use crate::clock::now_ms;
use crate::config::DeliverySettings;
use crate::engine::blocking;
use crate::error::{EngineError, Result};

/// Rows read per round of a destination.
const FETCH: usize = 512;
/// Requests a destination has in flight at once.
const CONCURRENCY: usize = 8;
/// Outcomes are recorded together (one transaction, one fsync) once this many waves of
/// requests have come back, after [`RECORD_EVERY`], before the outbox is read again and
/// before any pause or stop. A crash loses at most the outcomes not yet recorded, which are
/// sent again with the same `messageId`: the duplicates a SIGKILL can cause are at most
/// `RECORD_WAVES × CONCURRENCY × batch_size` messages (the waves awaiting their record, the
/// one in flight included). Recording each wave alone made `batch_size` 1 fsync-bound.
const RECORD_WAVES: usize = 8;
/// The most messages a destination of `batch_size` can have sent but not recorded at any
/// moment, so the most a crash can send twice ([`RECORD_WAVES`]).
pub const fn unrecorded_window(batch_size: usize) -> usize {
    RECORD_WAVES * CONCURRENCY * batch_size
}

/// The longest an outcome waits to be recorded while waves keep coming back.
const RECORD_EVERY: Duration = Duration::from_millis(100);
/// How long a stop waits for requests in flight before leaving them pending.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often the worker looks for destinations created or deleted, and an idle destination
/// for new messages when nothing woke it.
const IDLE_POLL: Duration = Duration::from_secs(1);

type HmacSha1 = Hmac<sha1::Sha1>;
type HmacSha256 = Hmac<sha2::Sha256>;

/// The delivery worker's handle inside the engine.
pub(crate) struct Delivery {
    client: reqwest::Client,
    settings: DeliverySettings,
    export_dir: PathBuf,
    stop: watch::Sender<bool>,
    /// Wakes idle destinations when messages were queued.
    wake: Arc<Notify>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Delivery {
    pub(crate) fn new(settings: DeliverySettings, export_dir: PathBuf) -> Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(format!("Affinity/{}", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(5)))
            // A receiver that moved must be updated, not followed with signed bodies.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EngineError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            settings,
            export_dir,
            stop: watch::channel(false).0,
            wake: Arc::new(Notify::new()),
            supervisor: Mutex::new(None),
        })
    }

    /// Tells idle destination tasks that new messages are queued.
    pub(crate) fn wake(&self) {
        self.wake.notify_waiters();
    }
}

/// What one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: Option<u16>,
    },
    /// Worth retrying; `after` is the receiver's `Retry-After`, when it gave one.
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// Hex HMAC-SHA1 (Segment's `X-Signature`) and HMAC-SHA256 of `body` with `secret`.
pub fn signatures(secret: &str, body: &[u8]) -> (String, String) {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let sha1 = HmacSha1::new_from_slice(secret.as_bytes())
        .map(|mut m| {
            m.update(body);
            hex(&m.finalize().into_bytes())
        })
        .unwrap_or_default();
    let sha256 = HmacSha256::new_from_slice(secret.as_bytes())
        .map(|mut m| {
            m.update(body);
            hex(&m.finalize().into_bytes())
        })
        .unwrap_or_default();
    (sha1, sha256)
}

/// `{"batch":[...]}` of stored bodies, exactly as stored.
fn batch_body<'a>(bodies: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("{\"batch\":[");
    for (i, b) in bodies.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(b);
    }
    out.push_str("]}");
    out
}

/// The longest `Retry-After` honoured: a receiver asking for more is retried after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The receiver's `Retry-After`, as delay-seconds or an HTTP-date (RFC 9110 § 10.2.3).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    parse_retry_after(value, std::time::SystemTime::now())
}

/// A `Retry-After` value read at `now`: seconds, or a date (in any of the three forms HTTP
/// allows; one already past means at once). None when it is neither: the backoff applies.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

async fn post(request: reqwest::RequestBuilder) -> Attempt {
    match request.send().await {
        Err(e) => Attempt::Retry {
            status: None,
            error: if e.is_timeout() {
                format!("timed out: {e}")
            } else {
                format!("cannot reach the receiver: {e}")
            },
            after: None,
        },
        Ok(response) => {
            let status = response.status();
            let after = retry_after(&response);
            let code = Some(status.as_u16());
            if status.is_success() {
                // Read the answer so the connection goes back to the pool.
                let _ = response.bytes().await;
                return Attempt::Delivered { status: code };
            }
            let text = response.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(200).collect();
            let error = format!("the receiver answered {status}: {excerpt}");
            if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
                Attempt::Retry {
                    status: code,
                    error,
                    after,
                }
            } else {
                Attempt::Failed {
                    status: code,
                    error,
                }
            }
        }
    }
}

/// Sends `bodies` (one request's worth) to the receiver of `config`.
pub(crate) async fn send(
    client: &reqwest::Client,
    export_dir: &Path,
    config: &DestinationConfig,
    bodies: Vec<String>,
) -> Attempt {
    match config {
        DestinationConfig::Webhook {
            url,
            secret,
            headers,
            batch_size,
            ..
        } => {
            let body = if *batch_size <= 1 && bodies.len() == 1 {
                bodies.into_iter().next().unwrap_or_default()
            } else {
                batch_body(bodies.iter().map(String::as_str))
            };
            let mut request = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            for (k, v) in headers {
                request = request.header(k, v);
            }
            if let Some(secret) = secret {
                let (sha1, sha256) = signatures(secret, body.as_bytes());
                request = request
                    .header("X-Signature", sha1)
                    .header("X-Signature-256", sha256);
            }
            post(request.body(body)).await
        }
        DestinationConfig::Segment { write_key, url } => {
            let body = batch_body(bodies.iter().map(String::as_str));
            let request = client
                .post(format!("{url}/v1/batch"))
                .basic_auth(write_key, Some(""))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            post(request).await
        }
        DestinationConfig::File { path, format } => {
            let file = export_dir.join(path);
            let format = *format;
            match tokio::task::spawn_blocking(move || append(&file, format, &bodies)).await {
                Ok(Ok(())) => Attempt::Delivered { status: None },
                // A full disk or a permission may be fixed: retried until the deadline.
                Ok(Err(e)) => Attempt::Retry {
                    status: None,
                    error: e,
                    after: None,
                },
                Err(e) => Attempt::Retry {
                    status: None,
                    error: format!("the write was interrupted: {e}"),
                    after: None,
                },
            }
        }
    }
}

/// The columns of a CSV export: one row per message.
const CSV_HEADER: [&str; 8] = [
    "message_id",
    "type",
    "user_id",
    "anonymous_id",
    "event",
    "traits",
    "properties",
    "timestamp",
];

/// Appends messages to an export file and syncs it: delivered means on disk.
fn append(file: &Path, format: FileFormat, bodies: &[String]) -> std::result::Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", file.display());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| fail(&e))?;
    let mut out = Vec::new();
    match format {
        FileFormat::Jsonl => {
            for b in bodies {
                out.extend_from_slice(b.as_bytes());
                out.push(b'\n');
            }
        }
        FileFormat::Csv => {
            let empty = f.metadata().map(|m| m.len() == 0).unwrap_or(true);
            let mut w = csv::Writer::from_writer(&mut out);
            if empty {
                w.write_record(CSV_HEADER).map_err(|e| fail(&e))?;
            }
            for b in bodies {
                let v: serde_json::Value = serde_json::from_str(b).map_err(|e| fail(&e))?;
                let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                let json = |k: &str| match &v[k] {
                    serde_json::Value::Null => String::new(),
                    x => x.to_string(),
                };
                w.write_record([
                    text("messageId"),
                    text("type"),
                    text("userId"),
                    text("anonymousId"),
                    text("event"),
                    json("traits"),
                    json("properties"),
                    text("timestamp"),
                ])
                .map_err(|e| fail(&e))?;
            }
            w.flush().map_err(|e| fail(&e))?;
        }
    }
    f.write_all(&out).map_err(|e| fail(&e))?;
    f.sync_data().map_err(|e| fail(&e))
}

/// The delay before retry number `attempts` (1 for the first): doubling from `initial`,
/// capped, and jittered down to half so that many messages failed together do not all come
/// back at once.
fn backoff(settings: &DeliverySettings, attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let full = settings
        .initial_backoff
        .saturating_mul(2u32.saturating_pow(exp))
        .min(settings.max_backoff);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// The recorded outcome of `attempt` for `row`: a retry past the deadline fails.
fn outcome(
    settings: &DeliverySettings,
    row: &OutboxRow,
    attempt: &Attempt,
    now: i64,
) -> DeliveryOutcome {
    match attempt.clone() {
        Attempt::Delivered { status } => DeliveryOutcome::Delivered { id: row.id, status },
        Attempt::Failed { status, error } => DeliveryOutcome::Failed {
            id: row.id,
            status,
            error,
        },
        Attempt::Retry {
            status,
            error,
            after,
        } => {
            let wait = after.unwrap_or_else(|| backoff(settings, row.attempts + 1));
            let next = now.saturating_add(wait.as_millis() as i64);
            let deadline = row
                .queued_at
                .saturating_add(settings.deadline.as_millis() as i64);
            if next > deadline {
                DeliveryOutcome::Failed {
                    id: row.id,
                    status,
                    error: format!(
                        "gave up: still failing {} after it was queued ({error})",
                        humanize(settings.deadline)
                    ),
                }
            } else {
                DeliveryOutcome::Retry {
                    id: row.id,
                    next_attempt_at: next,
                    status,
                    error,
                }
            }
        }
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Spaces requests so that a destination receives at most `rate` messages a second.
struct Pacer {
    rate: Option<f64>,
    next: tokio::time::Instant,
}

impl Pacer {
    async fn take(&mut self, messages: usize) {
        let Some(rate) = self.rate else { return };
        let now = tokio::time::Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        let start = self.next.max(now);
        self.next = start + Duration::from_secs_f64(messages as f64 / rate);
    }
}

/// Returns once the stop has come (or the engine is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `d`, or less when the stop comes; true when stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let early = tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = stopped(stop) => true,
    };
    early || *stop.borrow()
}

/// Delivers destination `id`'s outbox until the stop.
async fn run_destination(
    store: SqliteStore,
    delivery: Arc<Delivery>,
    id: i64,
    config: DestinationConfig,
    mut stop: watch::Receiver<bool>,
) {
    let per_request = config.batch_size().max(1);
    let mut pacer = Pacer {
        rate: config.max_per_second(),
        next: tokio::time::Instant::now(),
    };
    // Consecutive waves that failed entirely: the whole destination waits that backoff, so
    // a receiver that is down is not sent every pending message in turn.
    let mut failing: i64 = 0;
    let settings = delivery.settings.clone();
    'rounds: loop {
        if *stop.borrow() {
            return;
        }
        let s = store.clone();
        let rows = match blocking(move || Ok(s.due_messages(id, now_ms(), FETCH)?)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(destination = id, error = %e, "cannot read the outbox");
                if pause(&mut stop, IDLE_POLL).await {
                    return;
                }
                continue;
            }
        };
        if rows.is_empty() {
            let s = store.clone();
            let next = blocking(move || Ok(s.next_due(id)?)).await.ok().flatten();
            let wait = match next {
                Some(at) => Duration::from_millis((at - now_ms()).clamp(1, 1000) as u64),
                None => IDLE_POLL,
            };
            let wake = delivery.wake.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake.notified() => {}
                () = stopped(&mut stop) => return,
            }
            continue;
        }
        let requests: Vec<&[OutboxRow]> = rows.chunks(per_request).collect();
        let mut unrecorded = Unrecorded::default();
        for wave in requests.chunks(CONCURRENCY) {
            if *stop.borrow() {
                unrecorded.record(&store, id).await;
                return;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (i, request) in wave.iter().enumerate() {
                pacer.take(request.len()).await;
                let bodies: Vec<String> = request.iter().map(|r| r.body.clone()).collect();
                let (delivery, config) = (delivery.clone(), config.clone());
                tasks.spawn(async move {
                    let attempt =
                        send(&delivery.client, &delivery.export_dir, &config, bodies).await;
                    (i, attempt)
                });
            }
            let attempts = tasks.join_all().await;
            let now = now_ms();
            // Each failed row waits its own backoff (or the receiver's `Retry-After`); only
            // a wave that failed entirely pauses the destination (the receiver is down or
            // refusing everything), so that sporadic failures do not slow the others.
            let mut wait = Some(Duration::ZERO);
            for (i, attempt) in &attempts {
                match attempt {
                    Attempt::Retry { after, .. } => {
                        let w = after.unwrap_or_else(|| backoff(&settings, failing + 1));
                        wait = wait.map(|x| x.max(w));
                    }
                    _ => wait = None,
                }
                for row in wave[*i] {
                    unrecorded.push(outcome(&settings, row, attempt, now));
                }
            }
            unrecorded.wave_done();
            if wait.is_some() || unrecorded.due() {
                unrecorded.record(&store, id).await;
            }
            match wait {
                Some(w) => {
                    failing += 1;
                    tracing::debug!(destination = id, wait = ?w, "receiver failing; waiting");
                    if pause(&mut stop, w).await {
                        return;
                    }
                    continue 'rounds;
                }
                None => failing = 0,
            }
        }
        // Before the outbox is read again: an unrecorded row is still pending there.
        unrecorded.record(&store, id).await;
    }
}

/// Outcomes of waves that came back, not yet recorded ([`RECORD_WAVES`]).
#[derive(Default)]
struct Unrecorded {
    outcomes: Vec<DeliveryOutcome>,
    waves: usize,
    since: Option<std::time::Instant>,
}

impl Unrecorded {
    fn push(&mut self, outcome: DeliveryOutcome) {
        self.since.get_or_insert_with(std::time::Instant::now);
        self.outcomes.push(outcome);
    }

    fn wave_done(&mut self) {
        self.waves += 1;
    }

    fn due(&self) -> bool {
        self.waves >= RECORD_WAVES || self.since.is_some_and(|t| t.elapsed() >= RECORD_EVERY)
    }

    /// Records the outcomes in one transaction. Unrecorded (a store error), the rows stay
    /// pending and are sent again: at least once.
    async fn record(&mut self, store: &SqliteStore, id: i64) {
        let outcomes = std::mem::take(&mut self.outcomes);
        (self.waves, self.since) = (0, None);
        if outcomes.is_empty() {
            return;
        }
        let s = store.clone();
        let now = now_ms();
        if let Err(e) = blocking(move || Ok(s.record_deliveries(&outcomes, now)?)).await {
            tracing::error!(destination = id, error = %e, "cannot record deliveries");
        }
    }
}

impl Engine {
    /// Starts the delivery worker: one task per destination, created and ended as
    /// destinations come and go.
    pub(crate) fn start_delivery(&self) {
        let delivery = self.delivery.clone();
        let store = self.store.clone();
        let mut stop = delivery.stop.subscribe();
        let handle = tokio::spawn(async move {
            let mut running: HashMap<i64, (String, JoinHandle<()>)> = HashMap::new();
            loop {
                let s = store.clone();
                match blocking(move || Ok(s.destinations()?)).await {
                    Ok(list) => {
                        let mut seen = Vec::new();
                        for record in list {
                            seen.push(record.id);
                            let stored = record.config.to_string();
                            // A destination whose stored config changed is restarted with it.
                            if running.get(&record.id).is_some_and(|(c, _)| *c == stored) {
                                continue;
                            }
                            let config: DestinationConfig = match serde_json::from_value(
                                record.config,
                            ) {
                                Ok(c) => c,
                                Err(e) => {
                                    tracing::error!(destination = record.id, error = %e, "unreadable destination configuration");
                                    continue;
                                }
                            };
                            if let Some((_, old)) = running.remove(&record.id) {
                                old.abort();
                            }
                            let task = tokio::spawn(run_destination(
                                store.clone(),
                                delivery.clone(),
                                record.id,
                                config,
                                delivery.stop.subscribe(),
                            ));
                            running.insert(record.id, (stored, task));
                        }
                        running.retain(|id, (_, task)| {
                            let keep = seen.contains(id);
                            if !keep {
                                task.abort();
                            }
                            keep
                        });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot list destinations"),
                }
                if pause(&mut stop, IDLE_POLL).await {
                    break;
                }
            }
            // The stop: requests in flight get a moment to finish and be recorded; whatever
            // is left stays pending for the next start.
            let deadline = tokio::time::Instant::now() + STOP_GRACE;
            for (_, (_, mut task)) in running {
                if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                    task.abort();
                }
            }
        });
        if let Ok(mut slot) = self.delivery.supervisor.lock() {
            *slot = Some(handle);
        }
    }

    /// Stops delivering: waits up to [`STOP_GRACE`] for requests in flight and leaves the
    /// rest of the outbox pending.
    pub async fn stop_delivery(&self) {
        self.delivery.stop.send_replace(true);
        let handle = self
            .delivery
            .supervisor
            .lock()
            .ok()
            .and_then(|mut s| s.take());
        if let Some(handle) = handle {
            let _ = tokio::time::timeout(STOP_GRACE + Duration::from_secs(1), handle).await;
        }
    }

    /// Sends one message to a destination now, outside the outbox (a test message).
    pub(crate) async fn send_now(&self, config: &DestinationConfig, body: String) -> Attempt {
        send(
            &self.delivery.client,
            &self.delivery.export_dir,
            config,
            vec![body],
        )
        .await
    }

    pub(crate) fn wake_delivery(&self) {
        self.delivery.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_the_hex_hmacs_of_the_body() {
        // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA256).
        let (sha1, sha256) = signatures("Jefe", b"what do ya want for nothing?");
        assert_eq!(sha1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(
            sha256,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_back_off_and_stop_at_the_deadline() {
        let settings = DeliverySettings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            deadline: Duration::from_secs(3600),
            ..DeliverySettings::default()
        };
        for attempts in 1..12 {
            let d = backoff(&settings, attempts);
            let full = Duration::from_secs(1 << (attempts - 1)).min(settings.max_backoff);
            assert!(d <= full && d >= full / 2, "{attempts}: {d:?}");
        }
        let row = OutboxRow {
            id: 1,
            message_id: "m".into(),
            body: "{}".into(),
            attempts: 3,
            queued_at: 0,
        };
        let retry = Attempt::Retry {
            status: Some(503),
            error: "down".into(),
            after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            outcome(&settings, &row, &retry, 1000),
            DeliveryOutcome::Retry {
                id: 1,
                next_attempt_at: 31_000,
                status: Some(503),
                error: "down".into()
            },
            "Retry-After is honoured"
        );
        assert!(matches!(
            outcome(&settings, &row, &retry, 3_590_000),
            DeliveryOutcome::Failed { .. }
        ));
        let refused = Attempt::Failed {
            status: Some(400),
            error: "bad".into(),
        };
        assert!(matches!(
            outcome(&settings, &row, &refused, 0),
            DeliveryOutcome::Failed {
                status: Some(400),
                ..
            }
        ));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        use std::time::{SystemTime, UNIX_EPOCH};
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let at = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = at - Duration::from_secs(90);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate
            "Sunday, 06-Nov-94 08:49:37 GMT", // obsolete RFC 850 form
            "Sun Nov  6 08:49:37 1994",       // obsolete asctime form
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(90)),
                "{date}"
            );
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + Duration::from_secs(5)),
            Some(Duration::ZERO),
            "a date already past: at once"
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", SystemTime::UNIX_EPOCH),
            Some(MAX_RETRY_AFTER),
            "capped"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn a_batch_body_holds_the_stored_bodies_as_they_are() {
        assert_eq!(
            batch_body(["{\"a\":1}", "{\"b\":2}"].into_iter()),
            "{\"batch\":[{\"a\":1},{\"b\":2}]}"
        );
    }
}
