//! Watches with the API server's semantics, for every kind:
//! - no resourceVersion (or `0`): ADDED for every current object, then changes;
//! - a resourceVersion still in the history: every later change, then live;
//! - an older one: one `ERROR` event carrying a `410 Expired` `Status`, as the
//!   watch cache answers, after which a client relists;
//! - `allowWatchBookmarks`: periodic BOOKMARKs with the last resourceVersion
//!   sent; `sendInitialEvents`: the snapshot ends with a bookmark annotated
//!   `k8s.io/initial-events-end`;
//! - the stream ends at `timeoutSeconds`, or when the stand-in pauses.
//!
//! A bookmark's object holds only `kind`, `apiVersion` and metadata,
//! exactly as the API server sends it (and `kube` requires). Objects are
//! rendered as the request asked: in the version of its path, or as a
//! `Table` row for `kubectl get -w`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::Shared;
use crate::api_error::ApiError;
use crate::fields::{at, put};
use crate::kinds::Kind;
use crate::list_params::{ListParams, flag};
use crate::selectors::Selector;
use crate::store::{Change, ChangeKind};

/// Watches end after this long unless the client asked for less.
const MAX_TIMEOUT: Duration = Duration::from_secs(1800);

/// Which objects a watch sends.
pub(crate) struct Filter {
    pub kind: &'static Kind,
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: Selector,
}

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| at(object, &["metadata", "namespace"]).as_str() == Some(ns))
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    fn concerns(&self, change: &Change) -> bool {
        std::ptr::eq(change.resource, self.kind) && self.matches(&change.object)
    }
}

/// Renders an object for the wire (the version asked for, or a Table);
/// `true` for the first object the watch sends.
pub(crate) type Render = Box<dyn Fn(&Value, bool) -> Value + Send>;

enum Start {
    Snapshot {
        objects: Vec<Value>,
        live: broadcast::Receiver<Change>,
        resource_version: u64,
    },
    Resume {
        replay: Vec<Change>,
        live: broadcast::Receiver<Change>,
        resource_version: u64,
    },
    Expired(u64),
}

pub(crate) fn respond(
    shared: Arc<Shared>,
    filter: Filter,
    render: Render,
    api_version: String,
    params: &ListParams,
    since: Option<u64>,
) -> Response {
    let initial_events = flag(params.send_initial_events.as_ref());
    let start = {
        let store = shared.store();
        match since.filter(|_| !initial_events) {
            Some(rv) => match store.changes_since(rv) {
                Some((replay, live)) => Start::Resume {
                    replay,
                    live,
                    resource_version: rv,
                },
                None => Start::Expired(rv),
            },
            None => Start::Snapshot {
                objects: store.list(filter.kind, filter.namespace.as_deref()),
                live: store.subscribe(),
                resource_version: store.resource_version(),
            },
        }
    };
    let options = StreamOptions {
        bookmarks: flag(params.allow_watch_bookmarks.as_ref()),
        initial_events,
        timeout: params
            .timeout_seconds
            .map_or(MAX_TIMEOUT, |s| Duration::from_secs(s).min(MAX_TIMEOUT)),
        bookmark_interval: shared.config.bookmark_interval,
        api_version,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let stream = Stream {
        tx,
        render,
        first: true,
    };
    tokio::spawn(stream_events(shared, filter, start, options, stream));
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

struct StreamOptions {
    bookmarks: bool,
    initial_events: bool,
    timeout: Duration,
    bookmark_interval: Duration,
    api_version: String,
}

struct Stream {
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    render: Render,
    first: bool,
}

impl Stream {
    /// Sends one event; false once the client is gone.
    async fn send(&mut self, kind: &str, object: Value) -> bool {
        let mut bytes =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        self.tx.send(Ok(Bytes::from(bytes))).await.is_ok()
    }

    async fn object(&mut self, kind: ChangeKind, object: &Value) -> bool {
        let rendered = (self.render)(object, self.first);
        self.first = false;
        let kind = match kind {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        };
        self.send(kind, rendered).await
    }

    async fn bookmark(
        &mut self,
        kind: &Kind,
        api_version: &str,
        resource_version: u64,
        initial_events_end: bool,
    ) -> bool {
        let mut metadata = json!({"resourceVersion": resource_version.to_string()});
        if initial_events_end {
            put(
                &mut metadata,
                &["annotations"],
                json!({"k8s.io/initial-events-end": "true"}),
            );
        }
        let object = json!({"kind": kind.kind, "apiVersion": api_version, "metadata": metadata});
        self.send("BOOKMARK", object).await
    }

    async fn expired(&mut self, resource_version: u64) {
        let status = serde_json::to_value(ApiError::expired(resource_version).status())
            .unwrap_or(Value::Null);
        self.send("ERROR", status).await;
    }
}

async fn stream_events(
    shared: Arc<Shared>,
    filter: Filter,
    start: Start,
    options: StreamOptions,
    mut stream: Stream,
) {
    let (mut live, mut last) = match start {
        Start::Expired(rv) => {
            stream.expired(rv).await;
            return;
        }
        Start::Snapshot {
            objects,
            live,
            resource_version,
        } => {
            for object in objects.iter().filter(|o| filter.matches(o)) {
                if !stream.object(ChangeKind::Added, object).await {
                    return;
                }
            }
            if options.initial_events
                && !stream
                    .bookmark(filter.kind, &options.api_version, resource_version, true)
                    .await
            {
                return;
            }
            (live, resource_version)
        }
        Start::Resume {
            replay,
            live,
            resource_version,
        } => {
            let mut last = resource_version;
            for change in replay {
                last = change.resource_version;
                if filter.concerns(&change) && !stream.object(change.kind, &change.object).await {
                    return;
                }
            }
            (live, last)
        }
    };
    let mut paused = shared.paused.subscribe();
    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let mut ticks = tokio::time::interval(options.bookmark_interval);
    ticks.tick().await;
    loop {
        let sent = tokio::select! {
            _ = &mut deadline => return,
            () = until_paused(&mut paused) => return,
            _ = ticks.tick(), if options.bookmarks => {
                stream.bookmark(filter.kind, &options.api_version, last, false).await
            }
            change = live.recv() => match change {
                Ok(change) if change.resource_version <= last => continue,
                Ok(change) => {
                    last = change.resource_version;
                    if !filter.concerns(&change) {
                        continue;
                    }
                    stream.object(change.kind, &change.object).await
                }
                // This watcher fell too far behind: like the API server, end it with 410.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    stream.expired(last).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if !sent {
            return;
        }
    }
}

/// Resolves once the stand-in is paused (the guard is not kept across awaits).
async fn until_paused(paused: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = paused.wait_for(|paused| *paused).await.map(|_| ());
}
