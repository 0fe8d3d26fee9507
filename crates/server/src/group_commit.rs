//! Group commit: the durable writes of concurrent requests (a proof's
//! `jti`, the audit records) share one transaction.
//!
//! One task per server owns the writes. A request hands its
//! [`CommitItem`] over and waits for the answer; the task takes whatever
//! has queued up while the previous commit was on its way to the disk, at
//! most [`MAX_BATCH_ITEMS`] items, and commits them together with
//! [`Storage::commit_batch`]. Nothing waits on a timer: an idle server
//! commits a lone request at once, a busy one commits as many as arrived
//! during one commit. A request is answered only after the transaction
//! that holds its records has committed; when it fails, every request in
//! it is refused.
//!
//! The loop runs on a thread of its own (with a small runtime), not among
//! the request tasks: a client that disconnects while its request waits
//! cannot stop a commit half way for the others, and a batch's next step is
//! not queued behind other requests' cryptography on a busy worker — which,
//! with several replicas, would stretch the time each batch holds the audit
//! log's lock (measured with `podseal-dev bench`, docs/benchmarks.md).

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::storage::{CommitItem, Committed, Storage, StorageError};

/// The most items one transaction carries.
pub const MAX_BATCH_ITEMS: usize = 256;

type Reply = oneshot::Sender<Result<Committed, CommitFailed>>;

/// Why a group commit failed, the engine's message as it is, for each
/// waiter (`commit` wraps it once, as a `StorageError::Database`).
#[derive(Debug, Clone)]
struct CommitFailed(String);

/// The server's group committer over `S`.
pub struct GroupCommit<S: Storage> {
    storage: Arc<S>,
    queue: OnceLock<mpsc::UnboundedSender<(CommitItem, Reply)>>,
}

impl<S: Storage> GroupCommit<S> {
    /// A committer over `storage`; its task starts with the first item.
    pub fn new(storage: Arc<S>) -> Self {
        Self {
            storage,
            queue: OnceLock::new(),
        }
    }

    /// Commits `item` with whatever else is waiting; returns what it became
    /// once its transaction is durable. Needs a Tokio runtime.
    pub async fn commit(&self, item: CommitItem) -> Result<Committed, StorageError> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            start(self.storage.clone(), receiver);
            sender
        });
        let (reply, answer) = oneshot::channel();
        let stopped = || StorageError::Database {
            operation: "commit audit",
            message: "the commit task has stopped".into(),
        };
        queue.send((item, reply)).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|CommitFailed(message)| StorageError::Database {
                operation: "commit audit",
                message,
            })
    }
}

/// Starts the commit loop on a thread of its own. Should the thread or its
/// runtime not start, the queue's receiver is dropped and every commit —
/// so every release — is refused (fail closed), which the log says.
fn start<S: Storage>(storage: Arc<S>, receiver: mpsc::UnboundedReceiver<(CommitItem, Reply)>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the commit loop: every release is refused");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("podseal-commit".into())
        .spawn(move || runtime.block_on(run(storage, receiver)));
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the commit loop: every release is refused");
    }
}

/// The commit loop: runs until every sender is gone.
async fn run<S: Storage>(
    storage: Arc<S>,
    mut receiver: mpsc::UnboundedReceiver<(CommitItem, Reply)>,
) {
    while let Some(first) = receiver.recv().await {
        let mut items = vec![first.0];
        let mut replies = vec![first.1];
        while items.len() < MAX_BATCH_ITEMS {
            match receiver.try_recv() {
                Ok((item, reply)) => {
                    items.push(item);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        match storage.commit_batch(items).await {
            Ok(committed) if committed.len() == replies.len() => {
                for (reply, committed) in replies.into_iter().zip(committed) {
                    // The requester may have gone; its records are durable anyway.
                    let _ = reply.send(Ok(committed));
                }
            }
            Ok(_) => {
                tracing::error!("storage answered a group commit with the wrong number of items");
                for reply in replies {
                    let _ = reply.send(Err(CommitFailed(
                        "the commit's answer did not match".into(),
                    )));
                }
            }
            Err(error) => {
                // The engine's message as it is: `commit` wraps it once more.
                let message = match error {
                    StorageError::Database { message, .. } => message,
                    other => other.to_string(),
                };
                for reply in replies {
                    let _ = reply.send(Err(CommitFailed(message.clone())));
                }
            }
        }
    }
}
