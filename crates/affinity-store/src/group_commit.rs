//! Group commit: requests from many concurrent clients queue up while one transaction is
//! being committed, and the next transaction takes all of them at once. Each request's
//! completion runs only after its messages are durable (or the commit failed).

use std::sync::mpsc;
use std::thread::JoinHandle;

use affinity_core::Message;

use crate::sqlite::Writer;
use crate::{Outcome, StoreError};

/// Called once with the request's outcomes (in message order) after the commit.
pub type Done = Box<dyn FnOnce(Result<Vec<Outcome>, StoreError>) + Send>;

struct Request {
    messages: Vec<Message>,
    done: Done,
}

/// Most messages committed in one transaction; beyond this, queued requests wait for the
/// next commit so that no single transaction grows without bound.
const MAX_GROUP_MESSAGES: usize = 25_000;

pub struct GroupCommitter {
    sender: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommitter {
    pub fn start(writer: Writer) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("affinity-writer".into())
            .spawn(move || run(writer, receiver))
            .map_err(|e| StoreError::Commit(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues messages for the next commit. Never blocks.
    pub fn submit(&self, messages: Vec<Message>, done: Done) -> Result<(), StoreError> {
        let sender = self.sender.as_ref().ok_or(StoreError::Closed)?;
        sender
            .send(Request { messages, done })
            .map_err(|_| StoreError::Closed)
    }

    /// Commits everything already queued, then stops the writer thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.sender.take();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the writer thread panicked");
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(mut writer: Writer, receiver: mpsc::Receiver<Request>) {
    while let Ok(first) = receiver.recv() {
        let mut total = first.messages.len();
        let mut group = vec![first];
        while total < MAX_GROUP_MESSAGES {
            match receiver.try_recv() {
                Ok(next) => {
                    total += next.messages.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let slices: Vec<&[Message]> = group.iter().map(|r| r.messages.as_slice()).collect();
        match writer.append_groups(&slices) {
            Ok(outcomes) => {
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    (request.done)(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = group.len(), "commit failed");
                let text = e.to_string();
                for request in group {
                    (request.done)(Err(StoreError::Commit(text.clone())));
                }
            }
        }
    }
}
