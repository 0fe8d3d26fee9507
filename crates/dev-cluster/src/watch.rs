//! Pod watches with the API server's semantics:
//! - no resourceVersion (or `0`): ADDED for every current pod, then changes;
//! - a resourceVersion still in the history: every later change, then live;
//! - an older one: one `ERROR` event carrying a `410 Expired` `Status`, as the
//!   watch cache answers, after which a client relists;
//! - `allowWatchBookmarks`: periodic BOOKMARKs with the last resourceVersion
//!   sent; `sendInitialEvents`: the snapshot ends with a bookmark annotated
//!   `k8s.io/initial-events-end`;
//! - the stream ends at `timeoutSeconds`, or when the stand-in pauses.
//!
//! Events are `k8s-openapi` `WatchEvent<Pod>` values, except bookmarks: that
//! type drops `kind`/`apiVersion` from a bookmark's object, which a real API
//! server sends and `kube` requires, so a bookmark is sent as a `Pod` holding
//! only metadata, exactly as the API server does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, WatchEvent};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::Shared;
use crate::api_error::ApiError;
use crate::list_params::{ListParams, flag};
use crate::selectors::Selector;
use crate::store::{ChangeKind, PodChange};

/// Watches end after this long unless the client asked for less.
const MAX_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
}

impl Filter {
    fn matches(&self, pod: &Pod) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| pod.metadata.namespace.as_ref() == Some(ns))
            && self.labels.matches(pod)
            && self.fields.matches(pod)
    }
}

enum Start {
    Snapshot {
        pods: Vec<Pod>,
        live: broadcast::Receiver<PodChange>,
        resource_version: u64,
    },
    Resume {
        replay: Vec<PodChange>,
        live: broadcast::Receiver<PodChange>,
        resource_version: u64,
    },
    Expired(u64),
}

pub(crate) fn respond(
    shared: Arc<Shared>,
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
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
                pods: store.pods(namespace.as_deref()),
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
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let filter = Filter {
        namespace,
        labels,
        fields,
    };
    tokio::spawn(stream_events(shared, filter, start, options, tx));
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
}

#[derive(Serialize)]
struct BookmarkEvent {
    #[serde(rename = "type")]
    kind: &'static str,
    object: Pod,
}

fn line<T: Serialize>(event: &T) -> Result<Bytes, Infallible> {
    let mut bytes = serde_json::to_vec(event).unwrap_or_default();
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}

fn bookmark(resource_version: u64, initial_events_end: bool) -> Result<Bytes, Infallible> {
    let annotations = initial_events_end
        .then(|| BTreeMap::from([("k8s.io/initial-events-end".to_owned(), "true".to_owned())]));
    let object = Pod {
        metadata: ObjectMeta {
            resource_version: Some(resource_version.to_string()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: None,
        status: None,
    };
    line(&BookmarkEvent {
        kind: "BOOKMARK",
        object,
    })
}

fn change_event(change: PodChange) -> Result<Bytes, Infallible> {
    let event = match change.kind {
        ChangeKind::Added => WatchEvent::Added(change.pod),
        ChangeKind::Modified => WatchEvent::Modified(change.pod),
        ChangeKind::Deleted => WatchEvent::Deleted(change.pod),
    };
    line(&event)
}

async fn stream_events(
    shared: Arc<Shared>,
    filter: Filter,
    start: Start,
    options: StreamOptions,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let (mut live, mut last) = match start {
        Start::Expired(rv) => {
            let _ = tx
                .send(line(&WatchEvent::<Pod>::ErrorStatus(
                    ApiError::expired(rv).status().clone(),
                )))
                .await;
            return;
        }
        Start::Snapshot {
            pods,
            live,
            resource_version,
        } => {
            for pod in pods.into_iter().filter(|p| filter.matches(p)) {
                if tx.send(line(&WatchEvent::Added(pod))).await.is_err() {
                    return;
                }
            }
            if options.initial_events && tx.send(bookmark(resource_version, true)).await.is_err() {
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
                if filter.matches(&change.pod) && tx.send(change_event(change)).await.is_err() {
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
        let next = tokio::select! {
            _ = &mut deadline => return,
            () = until_paused(&mut paused) => return,
            _ = ticks.tick(), if options.bookmarks => bookmark(last, false),
            change = live.recv() => match change {
                Ok(change) if change.resource_version <= last => continue,
                Ok(change) => {
                    last = change.resource_version;
                    if !filter.matches(&change.pod) {
                        continue;
                    }
                    change_event(change)
                }
                // This watcher fell too far behind: like the API server, end it with 410.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let expired = WatchEvent::<Pod>::ErrorStatus(ApiError::expired(last).status().clone());
                    let _ = tx.send(line(&expired)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(next).await.is_err() {
            return;
        }
    }
}

/// Resolves once the stand-in is paused (the guard is not kept across awaits).
async fn until_paused(paused: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = paused.wait_for(|paused| *paused).await.map(|_| ());
}
