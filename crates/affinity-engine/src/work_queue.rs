//! Bounded background work: at most `workers` jobs of a kind run at once and at most `queue`
//! more wait for them; beyond that, work is refused at once with [`EngineError::Busy`] and an
//! estimate of when to retry. A request is never accepted that will not be honoured, and the
//! threads and memory a flood of requests can take are bounded by the two numbers.
//!
//! Each job holds a [`Ticket`] from admission until it ends; it runs on the blocking pool
//! only once it holds a worker permit, and the permit moves into the blocking closure, so a
//! caller that stops waiting (a client that hung up on a preview) never frees a worker early.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{EngineError, Result};
use crate::sync::lock;

/// Assumed length of a job before any has finished (for the first `Retry-After`).
const FIRST_GUESS: Duration = Duration::from_secs(5);
/// `Retry-After` stays within these bounds whatever the measured job lengths.
const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// A snapshot of a queue's state, for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkStats {
    pub workers: usize,
    pub capacity: usize,
    /// Admitted and not yet finished (running or waiting).
    pub admitted: usize,
    /// The most jobs ever admitted at once (never above `capacity`).
    pub peak_admitted: usize,
    pub running: usize,
    /// The most jobs that ever ran at once.
    pub peak_running: usize,
    pub completed: u64,
    pub rejected: u64,
}

struct Inner {
    /// What the queue runs, in messages ("audience computations").
    what: &'static str,
    workers: usize,
    /// workers + queue: the most jobs admitted at once.
    capacity: usize,
    permits: Arc<Semaphore>,
    admitted: AtomicUsize,
    peak_admitted: AtomicUsize,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    completed: u64,
    rejected: u64,
    /// Exponentially weighted mean of job durations, for `Retry-After`.
    mean: Option<Duration>,
}

/// A bounded queue of one kind of work. Cheap to clone.
#[derive(Clone)]
pub struct WorkQueue(Arc<Inner>);

impl WorkQueue {
    /// `workers` is taken as at least 1.
    pub fn new(what: &'static str, workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self(Arc::new(Inner {
            what,
            workers,
            capacity: workers + queue,
            permits: Arc::new(Semaphore::new(workers)),
            admitted: AtomicUsize::new(0),
            peak_admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            counts: Mutex::default(),
        }))
    }

    /// A place in the queue, or [`EngineError::Busy`] when `workers + queue` jobs are already
    /// admitted.
    pub fn admit(&self) -> Result<Ticket> {
        let inner = &self.0;
        let taken = inner
            .admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < inner.capacity).then_some(n + 1)
            });
        match taken {
            Ok(before) => {
                inner.peak_admitted.fetch_max(before + 1, Ordering::SeqCst);
                Ok(Ticket(self.0.clone()))
            }
            Err(_) => {
                lock(&inner.counts).rejected += 1;
                Err(EngineError::Busy {
                    what: inner.what,
                    capacity: inner.capacity,
                    workers: inner.workers,
                    retry_after: self.retry_after(),
                })
            }
        }
    }

    /// When a place is likely to be free: the mean job length times the rounds of workers
    /// needed to drain the jobs ahead.
    fn retry_after(&self) -> Duration {
        let inner = &self.0;
        let mean = lock(&inner.counts).mean.unwrap_or(FIRST_GUESS);
        let ahead = inner.admitted.load(Ordering::SeqCst).max(1);
        let rounds = ahead.div_ceil(inner.workers).max(1) as u32;
        // Only one place needs to free up, but a retry that comes back to a full queue costs
        // a round trip; a full round of the queue is the conservative middle.
        (mean * rounds / 2).clamp(MIN_RETRY, MAX_RETRY)
    }

    pub fn stats(&self) -> WorkStats {
        let inner = &self.0;
        let counts = lock(&inner.counts);
        WorkStats {
            workers: inner.workers,
            capacity: inner.capacity,
            admitted: inner.admitted.load(Ordering::SeqCst),
            peak_admitted: inner.peak_admitted.load(Ordering::SeqCst),
            running: inner.running.load(Ordering::SeqCst),
            peak_running: inner.peak_running.load(Ordering::SeqCst),
            completed: counts.completed,
            rejected: counts.rejected,
        }
    }
}

/// An admitted job's place in its queue, given back when the ticket is dropped.
pub struct Ticket(Arc<Inner>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A worker, held while a job runs (released when dropped).
pub struct Permit {
    _held: OwnedSemaphorePermit,
}

impl Ticket {
    /// A worker at once, if one is free (the job can be recorded as running, not queued).
    pub fn try_worker(&self) -> Option<Permit> {
        self.0
            .permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|held| Permit { _held: held })
    }

    /// Waits for a worker (unless `permit` already is one), then runs `job` on the blocking
    /// pool. The ticket and the permit are released when the job returns, even if the caller
    /// stopped waiting for it.
    pub async fn run<T: Send + 'static>(
        self,
        permit: Option<Permit>,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = match permit {
            Some(p) => p,
            None => Permit {
                _held: self
                    .0
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| EngineError::Task(e.to_string()))?,
            },
        };
        tokio::task::spawn_blocking(move || {
            let inner = self.0.clone();
            let running = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak_running.fetch_max(running, Ordering::SeqCst);
            let started = Instant::now();
            let result = job();
            let took = started.elapsed();
            inner.running.fetch_sub(1, Ordering::SeqCst);
            {
                let mut counts = lock(&inner.counts);
                counts.completed += 1;
                counts.mean = Some(match counts.mean {
                    None => took,
                    Some(m) => (m * 3 + took) / 4,
                });
            }
            // Released in this order once the job is done: the worker, then the place.
            drop(permit);
            drop(self);
            result
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_and_never_runs_more_than_its_workers() {
        let queue = WorkQueue::new("test jobs", 2, 3);
        let release = Arc::new(AtomicBool::new(false));
        let mut accepted = Vec::new();
        let mut refused = 0;
        for _ in 0..20 {
            match queue.admit() {
                Ok(ticket) => {
                    let release = release.clone();
                    accepted.push(tokio::spawn(ticket.run(None, move || {
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Ok(())
                    })));
                }
                Err(EngineError::Busy { retry_after, .. }) => {
                    assert!(retry_after >= MIN_RETRY);
                    refused += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!((accepted.len(), refused), (5, 15));
        // Two run, three wait: let them be scheduled before looking.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = queue.stats();
        assert_eq!((s.admitted, s.running, s.rejected), (5, 2, 15));
        release.store(true, Ordering::SeqCst);
        for job in accepted {
            job.await.expect("join").expect("job");
        }
        let s = queue.stats();
        assert_eq!((s.admitted, s.running, s.completed), (0, 0, 5));
        assert_eq!(s.peak_running, 2, "never more than the workers at once");
        assert_eq!(
            s.peak_admitted, 5,
            "never more than workers + queue admitted"
        );
        // Places are given back: the queue admits again.
        assert!(queue.admit().is_ok());
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_keeps_its_worker_busy_until_the_job_ends() {
        let queue = WorkQueue::new("test jobs", 1, 0);
        let release = Arc::new(AtomicBool::new(false));
        let ticket = queue.admit().expect("a place");
        let permit = ticket.try_worker().expect("a free worker");
        let flag = release.clone();
        let waiting = tokio::spawn(ticket.run(Some(permit), move || {
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiting.abort();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            queue.admit().is_err(),
            "the job still runs: its place is held"
        );
        release.store(true, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), async {
            while queue.stats().admitted > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the place is given back when the job ends");
        assert_eq!(queue.stats().completed, 1);
    }
}
