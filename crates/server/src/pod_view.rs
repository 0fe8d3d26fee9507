//! The read-only view of one cluster's pods that gate 4 consults.
//!
//! A `kube::runtime::watcher` over every pod feeds a reflector store. A lookup
//! answers from the store, or with a direct GET when the pod is not cached
//! yet, and returns the facts gate 4 needs: uid, phase, service account, and
//! every init, app and ephemeral container's image and `imageID` digest,
//! running instance (`containerID`) and whether it declares that it runs
//! podseal (the enrolment, `gate/enrolment.rs`).
//!
//! **Bounded staleness, reconciled with the API server.** The view is
//! *fresh* only while its cache has been reconciled with the API server
//! within `max_staleness`: the cache was built by a full list, and a
//! `list pods limit=1` probe (a consistent read, sent every
//! `probe_interval`) answered with a resourceVersion not older than the
//! newest one in the cache — or a watch event arrived after such a probe —
//! and no watch or probe error is newer. Otherwise every lookup answers
//! [`ViewAnswer::Unknown`], and gate 4 refuses: a view that cannot decide
//! never approves.
//!
//! A reset or restored API server (an etcd restore, a control plane rebuilt
//! under the same name) is caught three ways, each forcing a full relist
//! during which the view refuses: the probe's resourceVersion is older than
//! the cache's; a resumed watch or a list is answered `Too large resource
//! version` (504, cause `ResourceVersionTooLarge`) or `410 Gone`; and, for a
//! restored history that has already overtaken the cache's resourceVersion,
//! the full relist every `relist_interval`. A cached pod missing from a
//! relist is gone: its sessions are revoked.
//!
//! Deletions, uid changes (a pod recreated under the same name), container
//! instances that stopped running (an exit, or a restart's new
//! `containerID`) and other changes are broadcast as [`PodEvent`]s for the
//! session layer.
//!
//! The only API calls are get, list and watch on pods (see `docs/rbac.md`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ContainerStatus, EnvVar, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::broadcast;

use crate::api_server_error;

/// How fresh the view must be to answer.
#[derive(Debug, Clone, Copy)]
pub struct ViewConfig {
    /// After this long without hearing from the API server, answers are `Unknown`.
    pub max_staleness: Duration,
    /// How often a quiet cluster is probed.
    pub probe_interval: Duration,
    /// How often the whole cache is rebuilt from a fresh list even when
    /// nothing looks wrong (the bound for a restored history that has
    /// overtaken the cache's resourceVersion).
    pub relist_interval: Duration,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self::with_max_staleness(Duration::from_secs(5))
    }
}

impl ViewConfig {
    /// A configuration probing three times per staleness bound.
    pub fn with_max_staleness(max_staleness: Duration) -> Self {
        Self {
            max_staleness,
            probe_interval: max_staleness / 3,
            relist_interval: Duration::from_secs(300),
        }
    }
}

/// Which list a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// `spec.initContainers` that run to completion.
    Init,
    /// `spec.initContainers` with `restartPolicy: Always`: native sidecars,
    /// which keep running beside the app containers.
    Sidecar,
    /// `spec.containers` (apps and sidecars).
    App,
    /// `spec.ephemeralContainers` (debug containers).
    Ephemeral,
}

/// One container as spec and status describe it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerFacts {
    /// Which list.
    pub kind: ContainerKind,
    /// Name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// `imageID` from the status; `None` when the container has no status yet.
    pub image_id: Option<String>,
    /// `sha256:<64 hex>` parsed from `imageID`; `None` for no status or no digest.
    pub digest: Option<String>,
    /// The running instance: the status's `containerID` while its state is
    /// `running`; `None` while it waits, after it terminated, or with no
    /// status. A restart shows as a new id (and `restartCount` + 1).
    pub running_id: Option<String>,
    /// `restartCount` from the status (0 with no status).
    pub restart_count: i32,
    /// The spec sets `PODSEAL_CONTAINER` to this container's own name (a
    /// literal `value`): the container declares that it runs podseal and may
    /// enrol a DPoP key. Container env cannot change in a running pod.
    pub declares_podseal: bool,
}

/// An image volume (`spec.volumes[].image`, KEP-4639): the file system of
/// an OCI image mounted into the pod, content that runs as surely as a
/// container's image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageVolumeFacts {
    /// The volume's name.
    pub name: String,
    /// `image.reference` as written in the spec (empty when unset).
    pub reference: String,
    /// The digests the kubelet reports it mounted: every
    /// `status.*ContainerStatuses[].volumeMounts[].volumeStatus.image.imageRef`
    /// of a mount of this volume (KEP-5365, 1.36+), each parsed to
    /// `sha256:<64 hex>`; `None` for a reported `imageRef` without one.
    pub mounted: Vec<Option<String>>,
}

impl ImageVolumeFacts {
    /// `sha256:<64 hex>` from an `@sha256:` in the reference itself.
    pub fn reference_digest(&self) -> Option<String> {
        let (_, digest) = self.reference.rsplit_once('@')?;
        digest_of_image_id(digest)
    }
}

/// What gate 4 needs to know about a pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodFacts {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
    /// `status.phase`.
    pub phase: Option<String>,
    /// True when `deletionTimestamp` is set.
    pub terminating: bool,
    /// `spec.serviceAccountName`.
    pub service_account: Option<String>,
    /// `spec.nodeName`: the node the pod was scheduled on.
    pub node_name: Option<String>,
    /// Every container in the spec, each with its status if reported.
    pub containers: Vec<ContainerFacts>,
    /// Every image volume in the spec.
    pub image_volumes: Vec<ImageVolumeFacts>,
    /// The names of `gitRepo` volumes: content cloned from a repository at
    /// pod start, which no image digest attests.
    pub git_repo_volumes: Vec<String>,
}

impl PodFacts {
    /// Running and not being deleted.
    pub fn is_running(&self) -> bool {
        self.phase.as_deref() == Some("Running") && !self.terminating
    }
}

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewAnswer {
    /// The view cannot decide (stale, not synced, API error): refuse.
    Unknown {
        /// Why, for logs and refusals (no secrets here).
        reason: String,
    },
    /// No such pod.
    Absent,
    /// The pod.
    Present(PodFacts),
}

/// A change the session layer must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodEvent {
    /// The pod with this uid is gone.
    Deleted {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The uid that is gone.
        uid: String,
    },
    /// The name now belongs to a pod with another uid.
    Replaced {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The previous uid.
        old_uid: String,
        /// The new uid.
        new_uid: String,
    },
    /// A container instance that was running is no longer: it exited, or a
    /// restart replaced it with a new `containerID`. Its sessions end.
    ContainerEnded {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The pod's uid.
        uid: String,
        /// The container's name.
        container: String,
        /// The `containerID` of the instance that ended.
        container_id: String,
    },
    /// The pod changed (phase, containers): re-check it.
    Changed {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Uid.
        uid: String,
    },
}

#[derive(Debug, Default)]
struct Health {
    /// The cache was built by a full list and no reset has been seen since.
    synced: bool,
    last_ok: Option<Instant>,
    last_error: Option<(Instant, String)>,
    /// The newest resourceVersion in the cache (0: none parsed yet).
    cache_rv: u64,
    /// The newest resourceVersion of the list under way, while relisting.
    listing_rv: Option<u64>,
}

impl Health {
    fn ok(&mut self) {
        self.last_ok = Some(Instant::now());
    }

    /// The cache can no longer be trusted: refuse until a full relist ends.
    fn desync(&mut self, reason: String) {
        tracing::warn!(%reason, "pod view no longer trusts its cache; refusing until a full relist");
        self.synced = false;
        self.error(reason);
    }

    /// Tracks the resourceVersions of what the watch applied.
    fn saw(&mut self, event: &watcher::Event<Pod>) {
        let rv_of = |pod: &Pod| {
            pod.metadata
                .resource_version
                .as_deref()
                .and_then(|rv| rv.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match event {
            watcher::Event::Init => self.listing_rv = Some(0),
            watcher::Event::InitApply(pod) => {
                let listing = self.listing_rv.get_or_insert(0);
                *listing = (*listing).max(rv_of(pod));
            }
            watcher::Event::InitDone => {
                // The cache is now exactly this list: its resourceVersion
                // replaces the old one, which may be far larger after a reset.
                self.cache_rv = self.listing_rv.take().unwrap_or(0);
                self.synced = true;
            }
            watcher::Event::Apply(pod) | watcher::Event::Delete(pod) => {
                self.cache_rv = self.cache_rv.max(rv_of(pod));
            }
        }
    }

    fn error(&mut self, reason: String) {
        self.last_error = Some((Instant::now(), reason));
    }

    /// `None` when fresh, else why not.
    fn staleness_reason(&self, max_staleness: Duration, now: Instant) -> Option<String> {
        if !self.synced {
            return Some(match &self.last_error {
                Some((_, reason)) => format!("pod view is relisting: {reason}"),
                None => "pod view has not finished its first list".into(),
            });
        }
        let Some(last_ok) = self.last_ok else {
            return Some("API server not heard from yet".into());
        };
        if let Some((_, reason)) = self.last_error.as_ref().filter(|(at, _)| *at >= last_ok) {
            return Some(format!("API server unreachable: {reason}"));
        }
        let age = now.saturating_duration_since(last_ok);
        (age > max_staleness)
            .then(|| format!("API server last heard from {} ms ago", age.as_millis()))
    }
}

/// A live view of one cluster's pods. Dropping it stops its tasks.
pub struct PodView {
    client: kube::Client,
    store: Store<Pod>,
    health: Arc<Mutex<Health>>,
    events: broadcast::Sender<PodEvent>,
    config: ViewConfig,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Lookups waiting in [`PodView::lookup_until`] now.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts one waiting lookup while it lives.
struct Waiting(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for PodView {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(health: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    health
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PodView {
    /// Starts watching every pod of the cluster behind `client`.
    pub fn start(client: kube::Client, config: ViewConfig) -> Self {
        let (store, writer) = reflector::store::<Pod>();
        let health = Arc::new(Mutex::new(Health::default()));
        let (events, _) = broadcast::channel(1024);
        let relist = Arc::new(tokio::sync::Notify::new());
        let watch = tokio::spawn(run_watch(
            client.clone(),
            writer,
            health.clone(),
            events.clone(),
            relist.clone(),
            config,
        ));
        let probe = tokio::spawn(run_probe(client.clone(), health.clone(), relist, config));
        Self {
            client,
            store,
            health,
            events,
            config,
            tasks: vec![watch, probe],
            waiting: Arc::default(),
        }
    }

    /// `None` when the view may answer, else why it may not.
    pub fn staleness(&self) -> Option<String> {
        lock(&self.health).staleness_reason(self.config.max_staleness, Instant::now())
    }

    /// How long ago the API server was last heard from (`None`: never).
    pub fn last_heard_age(&self) -> Option<Duration> {
        lock(&self.health)
            .last_ok
            .map(|at| Instant::now().saturating_duration_since(at))
    }

    /// The client this view reads the cluster with (its API server, pinned
    /// CA and read-only token).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Lookups waiting for a pod to change now (session requests waiting
    /// for the kubelet to report a container's new instance).
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True when the view may answer.
    pub fn is_fresh(&self) -> bool {
        self.staleness().is_none()
    }

    /// Receives deletions, uid changes and other changes.
    pub fn subscribe(&self) -> broadcast::Receiver<PodEvent> {
        self.events.subscribe()
    }

    /// Looks `namespace/name` up until `done` holds of the answer or
    /// `deadline` passes, looking again after each change the watch reports
    /// for that pod; returns the last answer, on which the caller decides.
    /// (Used where the API server is known to lag the node: a restarted
    /// container runs before the kubelet reports its new `containerID`.)
    pub async fn lookup_until(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
        done: impl Fn(&ViewAnswer) -> bool,
    ) -> ViewAnswer {
        use tokio::sync::broadcast::error::RecvError;
        // Subscribed before the first lookup, so no change falls between.
        let mut events = self.events.subscribe();
        let mut counted = None;
        loop {
            let answer = self.lookup(namespace, name).await;
            if done(&answer) || Instant::now() >= deadline {
                return answer;
            }
            counted.get_or_insert_with(|| {
                self.waiting
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Waiting(self.waiting.clone())
            });
            let change = async {
                loop {
                    match events.recv().await {
                        Ok(event) if event.pod() == (namespace, name) => return true,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => return true,
                        Err(RecvError::Closed) => return false,
                    }
                }
            };
            match tokio::time::timeout_at(deadline.into(), change).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return self.lookup(namespace, name).await,
            }
        }
    }

    /// What the view knows of `namespace/name`, from the cache or, on a
    /// miss or a cached pod that is not Running, from a direct GET.
    pub async fn lookup(&self, namespace: &str, name: &str) -> ViewAnswer {
        if let Some(reason) = self.staleness() {
            return ViewAnswer::Unknown { reason };
        }
        if let Some(pod) = self.store.get(&ObjectRef::new(name).within(namespace)) {
            let facts = pod_facts(&pod);
            // The watch can lag a pod's start by an event: a pod the cache
            // shows not Running is asked for directly, so a pod that already
            // runs is not refused for an old event. (The other direction — a
            // cached Running pod that changed — is bounded by the staleness.)
            if facts.is_running() {
                return ViewAnswer::Present(facts);
            }
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(self.config.max_staleness, api.get_opt(name)).await {
            Ok(Ok(Some(pod))) => ViewAnswer::Present(pod_facts(&pod)),
            Ok(Ok(None)) => ViewAnswer::Absent,
            Ok(Err(e)) => ViewAnswer::Unknown {
                reason: format!(
                    "direct GET failed: {}",
                    api_server_error::describe(&e, None)
                ),
            },
            Err(_) => ViewAnswer::Unknown {
                reason: "direct GET timed out".into(),
            },
        }
    }
}

impl PodEvent {
    /// The namespace and name of the pod the event is about.
    pub fn pod(&self) -> (&str, &str) {
        match self {
            Self::Deleted {
                namespace, name, ..
            }
            | Self::Replaced {
                namespace, name, ..
            }
            | Self::ContainerEnded {
                namespace, name, ..
            }
            | Self::Changed {
                namespace, name, ..
            } => (namespace, name),
        }
    }
}

type Key = (String, String);

fn key_of(pod: &Pod) -> Key {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Turns watcher events into [`PodEvent`]s, including deletions that only
/// show as absences after a relist.
#[derive(Default)]
struct EventTracker {
    known: HashMap<Key, KnownPod>,
    relisting: Option<HashSet<Key>>,
}

/// What the tracker remembers of a pod: its uid and which container
/// instances were running.
struct KnownPod {
    uid: String,
    /// Container name → `containerID` of its running instance.
    running: HashMap<String, String>,
}

/// Container name → `containerID`, for every container whose state is running.
fn running_instances(pod: &Pod) -> HashMap<String, String> {
    pod_facts(pod)
        .containers
        .into_iter()
        .filter_map(|c| c.running_id.map(|id| (c.name, id)))
        .collect()
}

impl EventTracker {
    fn apply(&mut self, pod: &Pod, out: &mut Vec<PodEvent>) {
        let (key, uid) = (key_of(pod), uid_of(pod));
        let (namespace, name) = key.clone();
        let running = running_instances(pod);
        let previous = self.known.insert(
            key,
            KnownPod {
                uid: uid.clone(),
                running: running.clone(),
            },
        );
        match previous {
            Some(old) if old.uid != uid => out.push(PodEvent::Replaced {
                namespace,
                name,
                old_uid: old.uid,
                new_uid: uid,
            }),
            Some(old) => {
                let mut ended: Vec<(String, String)> = old
                    .running
                    .into_iter()
                    .filter(|(container, id)| running.get(container) != Some(id))
                    .collect();
                ended.sort();
                for (container, container_id) in ended {
                    out.push(PodEvent::ContainerEnded {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        uid: uid.clone(),
                        container,
                        container_id,
                    });
                }
                out.push(PodEvent::Changed {
                    namespace,
                    name,
                    uid,
                });
            }
            None => {}
        }
    }

    fn track(&mut self, event: &watcher::Event<Pod>) -> Vec<PodEvent> {
        let mut out = Vec::new();
        match event {
            watcher::Event::Apply(pod) => self.apply(pod, &mut out),
            watcher::Event::Delete(pod) => {
                let (namespace, name) = key_of(pod);
                self.known.remove(&(namespace.clone(), name.clone()));
                out.push(PodEvent::Deleted {
                    namespace,
                    name,
                    uid: uid_of(pod),
                });
            }
            watcher::Event::Init => self.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(seen) = &mut self.relisting {
                    seen.insert(key_of(pod));
                }
                self.apply(pod, &mut out);
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.take().unwrap_or_default();
                let gone: Vec<Key> = self
                    .known
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for (namespace, name) in gone {
                    if let Some(known) = self.known.remove(&(namespace.clone(), name.clone())) {
                        out.push(PodEvent::Deleted {
                            namespace,
                            name,
                            uid: known.uid,
                        });
                    }
                }
            }
        }
        out
    }
}

/// True for the answers that mean the server's history is not the one the
/// cache came from (or is gone): the watch must start again with a full list.
fn forces_relist(error: &watcher::Error) -> bool {
    let status_code = match error {
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    };
    // 504 is how the API server says "Too large resource version"; 410
    // "too old" (the watcher relists after it already, but say so).
    matches!(status_code, Some(504 | 410))
}

/// One line for a watch error: the API server's code and message, not a
/// `Debug` dump of its `Status`.
fn describe(error: &watcher::Error) -> String {
    match error {
        watcher::Error::WatchError(status) => {
            format!("the API server answered {} {}", status.code, status.message)
        }
        watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e)
        | watcher::Error::InitialListFailed(e) => api_server_error::describe(e, None),
        other => other.to_string(),
    }
}

async fn run_watch(
    client: kube::Client,
    mut writer: reflector::store::Writer<Pod>,
    health: Arc<Mutex<Health>>,
    events: broadcast::Sender<PodEvent>,
    relist: Arc<tokio::sync::Notify>,
    config: ViewConfig,
) {
    let api: Api<Pod> = Api::all(client);
    // A consistent list, never one served from a possibly older cache.
    let watch_config = watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
    let mut tracker = EventTracker::default();
    let max_backoff = config.max_staleness / 2;
    loop {
        let mut stream = std::pin::pin!(watcher(api.clone(), watch_config.clone()));
        let mut backoff = Duration::from_millis(50).min(max_backoff);
        let relist_due = tokio::time::sleep(config.relist_interval);
        tokio::pin!(relist_due);
        loop {
            let item = tokio::select! {
                () = relist.notified() => break,
                () = &mut relist_due => break,
                item = stream.next() => item,
            };
            match item {
                None => break,
                Some(Ok(event)) => {
                    backoff = Duration::from_millis(50).min(max_backoff);
                    writer.apply_watcher_event(&event);
                    {
                        let mut health = lock(&health);
                        health.saw(&event);
                        health.ok();
                    }
                    for change in tracker.track(&event) {
                        // No subscriber is fine.
                        let _ = events.send(change);
                    }
                }
                Some(Err(e)) => {
                    if forces_relist(&e) {
                        lock(&health).desync(format!("{}; relisting", describe(&e)));
                        break;
                    }
                    lock(&health).error(describe(&e));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
        // The next stream begins with a full list (Init … InitDone), which
        // replaces the cache whole and reports the pods it no longer has.
    }
}

async fn run_probe(
    client: kube::Client,
    health: Arc<Mutex<Health>>,
    relist: Arc<tokio::sync::Notify>,
    config: ViewConfig,
) {
    let api: Api<Pod> = Api::all(client);
    let params = ListParams::default().limit(1);
    let mut ticks = tokio::time::interval(config.probe_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // What the cache held before the list was sent: everything in it
        // was committed before, so a consistent list cannot be older.
        let cache_rv = lock(&health).cache_rv;
        let probe = tokio::time::timeout(
            config.probe_interval.max(Duration::from_millis(100)),
            api.list(&params),
        );
        match probe.await {
            Ok(Ok(list)) => {
                let server_rv = list
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|rv| rv.parse::<u64>().ok());
                let mut health = lock(&health);
                match server_rv {
                    Some(server_rv) if server_rv >= cache_rv => health.ok(),
                    Some(server_rv) => {
                        health.desync(format!(
                            "API server's resourceVersion {server_rv} is older than the cache's {cache_rv} (reset or restored); relisting"
                        ));
                        relist.notify_one();
                    }
                    None => health.error(
                        "API server's list carried no numeric resourceVersion; cannot reconcile"
                            .into(),
                    ),
                }
            }
            Ok(Err(e)) => lock(&health).error(api_server_error::describe(&e, None)),
            Err(_) => lock(&health).error("probe timed out".into()),
        }
    }
}

/// `sha256:<64 lowercase hex>` from an `imageID` such as
/// `registry/repo@sha256:…` or `docker-pullable://repo@sha256:…`.
pub fn digest_of_image_id(image_id: &str) -> Option<String> {
    let digest = image_id.rsplit_once('@').map_or(image_id, |(_, d)| d);
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then(|| digest.to_owned())
}

/// The variable a container's spec sets to its own name to declare that it
/// runs podseal (see [`ContainerFacts::declares_podseal`]).
pub const CONTAINER_VARIABLE: &str = "PODSEAL_CONTAINER";

fn declares_podseal(name: &str, env: Option<&Vec<EnvVar>>) -> bool {
    env.into_iter()
        .flatten()
        .any(|var| var.name == CONTAINER_VARIABLE && var.value.as_deref() == Some(name))
}

/// The facts of a pod, from its spec and status.
pub fn pod_facts(pod: &Pod) -> PodFacts {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let statuses = |list: Option<&Vec<ContainerStatus>>| list.cloned().unwrap_or_default();
    let mut containers = Vec::new();
    let mut push = |kind,
                    name: &str,
                    image: Option<&String>,
                    env: Option<&Vec<EnvVar>>,
                    list: &[ContainerStatus]| {
        let status = list.iter().find(|s| s.name == name);
        let image_id = status
            .map(|s| s.image_id.clone())
            .filter(|id| !id.is_empty());
        let running_id = status
            .filter(|s| {
                s.state
                    .as_ref()
                    .is_some_and(|state| state.running.is_some())
            })
            .and_then(|s| s.container_id.clone())
            .filter(|id| !id.is_empty());
        containers.push(ContainerFacts {
            kind,
            name: name.to_owned(),
            image: image.cloned().unwrap_or_default(),
            digest: image_id.as_deref().and_then(digest_of_image_id),
            image_id,
            running_id,
            restart_count: status.map_or(0, |s| s.restart_count),
            declares_podseal: declares_podseal(name, env),
        });
    };
    let init_statuses = statuses(status.and_then(|s| s.init_container_statuses.as_ref()));
    for c in spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
    {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        };
        push(
            kind,
            &c.name,
            c.image.as_ref(),
            c.env.as_ref(),
            &init_statuses,
        );
    }
    let app_statuses = statuses(status.and_then(|s| s.container_statuses.as_ref()));
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        push(
            ContainerKind::App,
            &c.name,
            c.image.as_ref(),
            c.env.as_ref(),
            &app_statuses,
        );
    }
    let ephemeral_statuses = statuses(status.and_then(|s| s.ephemeral_container_statuses.as_ref()));
    for c in spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
    {
        push(
            ContainerKind::Ephemeral,
            &c.name,
            c.image.as_ref(),
            c.env.as_ref(),
            &ephemeral_statuses,
        );
    }
    let all_statuses = || {
        init_statuses
            .iter()
            .chain(&app_statuses)
            .chain(&ephemeral_statuses)
    };
    let volumes = spec.and_then(|s| s.volumes.as_ref()).into_iter().flatten();
    let mut image_volumes = Vec::new();
    let mut git_repo_volumes = Vec::new();
    for volume in volumes {
        if volume.git_repo.is_some() {
            git_repo_volumes.push(volume.name.clone());
        }
        let Some(image) = &volume.image else {
            continue;
        };
        let mounted = all_statuses()
            .flat_map(|s| s.volume_mounts.iter().flatten())
            .filter(|mount| mount.name == volume.name)
            .filter_map(|mount| mount.volume_status.as_ref()?.image.as_ref())
            .map(|image| digest_of_image_id(&image.image_ref))
            .collect();
        image_volumes.push(ImageVolumeFacts {
            name: volume.name.clone(),
            reference: image.reference.clone().unwrap_or_default(),
            mounted,
        });
    }
    PodFacts {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: uid_of(pod),
        phase: status.and_then(|s| s.phase.clone()),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        service_account: spec.and_then(|s| s.service_account_name.clone()),
        node_name: spec.and_then(|s| s.node_name.clone()),
        containers,
        image_volumes,
        git_repo_volumes,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A pod as a 1.36 API server returns it: the image volume of the
    /// Kubernetes documentation's example (`volumes[].image`, KEP-4639), a
    /// native sidecar, a `gitRepo` volume, and the kubelet's
    /// `volumeMounts[].volumeStatus.image.imageRef` (KEP-5365).
    #[test]
    fn image_volumes_and_sidecars_are_read_from_a_1_36_pod() {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let running = |name: &str, image: &str, d: char, mounts: serde_json::Value| {
            serde_json::json!({
                "name": name, "image": image, "imageID": format!("{image}@{}", digest(d)),
                "containerID": format!("containerd://{name}"), "ready": true, "restartCount": 0,
                "started": true, "state": { "running": { "startedAt": "2026-12-01T10:00:00Z" } },
                "volumeMounts": mounts,
            })
        };
        let mount = |image_ref: Option<String>| {
            let mut m = serde_json::json!({
                "name": "volume", "mountPath": "/volume", "readOnly": true,
                "recursiveReadOnly": "Disabled",
            });
            if let Some(image_ref) = image_ref {
                m["volumeStatus"] = serde_json::json!({ "image": { "imageRef": image_ref } });
            }
            m
        };
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "image-volume", "namespace": "default", "uid": "u-1" },
            "spec": {
                "nodeName": "node-a",
                "serviceAccountName": "default",
                "initContainers": [
                    { "name": "proxy", "image": "registry.example/proxy:1", "restartPolicy": "Always",
                      "volumeMounts": [{ "name": "volume", "mountPath": "/volume" }] },
                    { "name": "migrate", "image": "registry.example/migrate:1" },
                ],
                "containers": [{
                    "name": "shell", "command": ["sleep", "infinity"], "image": "debian",
                    "volumeMounts": [{ "name": "volume", "mountPath": "/volume" }],
                }],
                "volumes": [
                    { "name": "volume", "image": { "reference": "quay.io/crio/artifact:v2", "pullPolicy": "IfNotPresent" } },
                    { "name": "pinned", "image": { "reference": format!("quay.io/crio/artifact@{}", digest('c')) } },
                    { "name": "src", "gitRepo": { "repository": "https://git.example/app.git", "revision": "main" } },
                    { "name": "cache", "emptyDir": {} },
                ],
            },
            "status": {
                "phase": "Running",
                "initContainerStatuses": [
                    running("proxy", "registry.example/proxy:1", 'p', serde_json::json!([mount(Some(format!("quay.io/crio/artifact@{}", digest('b'))))])),
                ],
                "containerStatuses": [
                    running("shell", "docker.io/library/debian:latest", 'd', serde_json::json!([mount(Some("quay.io/crio/artifact:v2".into())), mount(None)])),
                ],
            },
        }))
        .unwrap();
        let facts = pod_facts(&pod);
        assert_eq!(facts.node_name.as_deref(), Some("node-a"));
        let kinds: Vec<(ContainerKind, &str)> = facts
            .containers
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ContainerKind::Sidecar, "proxy"),
                (ContainerKind::Init, "migrate"),
                (ContainerKind::App, "shell"),
            ]
        );
        assert_eq!(
            facts.image_volumes,
            [
                ImageVolumeFacts {
                    name: "volume".into(),
                    reference: "quay.io/crio/artifact:v2".into(),
                    // The sidecar's report, and the app container's that
                    // carries no digest; the mount with no status adds none.
                    mounted: vec![Some(digest('b')), None],
                },
                ImageVolumeFacts {
                    name: "pinned".into(),
                    reference: format!("quay.io/crio/artifact@{}", digest('c')),
                    mounted: vec![],
                },
            ]
        );
        assert_eq!(facts.image_volumes[0].reference_digest(), None);
        assert_eq!(facts.image_volumes[1].reference_digest(), Some(digest('c')));
        assert_eq!(facts.git_repo_volumes, ["src"]);
    }

    fn pod(name: &str, uid: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some(name.into()),
                uid: Some(uid.into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    /// `pod("a", "1")` with containers `api` and `worker`, each running
    /// the instance given (or waiting, for `None`).
    fn pod_running(api: Option<&str>, worker: Option<&str>) -> Pod {
        use k8s_openapi::api::core::v1::{
            Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, PodSpec,
            PodStatus,
        };
        let status = |name: &str, id: Option<&str>| ContainerStatus {
            name: name.into(),
            container_id: Some(format!("containerd://{}", id.unwrap_or("old"))),
            state: Some(match id {
                Some(_) => ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                },
                None => ContainerState {
                    waiting: Some(ContainerStateWaiting::default()),
                    ..ContainerState::default()
                },
            }),
            ..ContainerStatus::default()
        };
        Pod {
            spec: Some(PodSpec {
                containers: ["api", "worker"]
                    .map(|name| Container {
                        name: name.into(),
                        ..Container::default()
                    })
                    .into(),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![status("api", api), status("worker", worker)]),
                ..PodStatus::default()
            }),
            ..pod("a", "1")
        }
    }

    #[test]
    fn tracker_reports_container_instances_that_stop_running() {
        let ended = |container: &str, id: &str| PodEvent::ContainerEnded {
            namespace: "shop".into(),
            name: "a".into(),
            uid: "1".into(),
            container: container.into(),
            container_id: format!("containerd://{id}"),
        };
        let changed = PodEvent::Changed {
            namespace: "shop".into(),
            name: "a".into(),
            uid: "1".into(),
        };
        let mut tracker = EventTracker::default();
        let mut apply = |pod: Pod| tracker.track(&watcher::Event::Apply(pod));
        assert!(apply(pod_running(Some("a1"), Some("w1"))).is_empty());
        // Nothing ended: only a change.
        assert_eq!(
            apply(pod_running(Some("a1"), Some("w1"))),
            std::slice::from_ref(&changed)
        );
        // The api process exited: the kubelet waits to restart it.
        assert_eq!(
            apply(pod_running(None, Some("w1"))),
            [ended("api", "a1"), changed.clone()]
        );
        // Restarted: a new instance, nothing more ended.
        assert_eq!(
            apply(pod_running(Some("a2"), Some("w1"))),
            std::slice::from_ref(&changed)
        );
        // Both restarted between two events (the waiting state never seen).
        assert_eq!(
            apply(pod_running(Some("a3"), Some("w2"))),
            [ended("api", "a2"), ended("worker", "w1"), changed]
        );
        let facts = pod_facts(&pod_running(Some("a3"), None));
        assert_eq!(
            facts.containers[0].running_id.as_deref(),
            Some("containerd://a3")
        );
        assert_eq!(
            facts.containers[1].running_id, None,
            "waiting is not running"
        );
    }

    #[test]
    fn tracker_reports_replacements_and_deletions_seen_only_in_a_relist() {
        let mut tracker = EventTracker::default();
        assert!(
            tracker
                .track(&watcher::Event::Apply(pod("a", "1")))
                .is_empty()
        );
        assert!(
            tracker
                .track(&watcher::Event::Apply(pod("b", "2")))
                .is_empty()
        );
        assert_eq!(
            tracker.track(&watcher::Event::Apply(pod("a", "1"))),
            [PodEvent::Changed {
                namespace: "shop".into(),
                name: "a".into(),
                uid: "1".into()
            }]
        );
        // A relist (after 410) where `a` came back with a new uid and `b` is gone.
        assert!(tracker.track(&watcher::Event::Init).is_empty());
        assert_eq!(
            tracker.track(&watcher::Event::InitApply(pod("a", "3"))),
            [PodEvent::Replaced {
                namespace: "shop".into(),
                name: "a".into(),
                old_uid: "1".into(),
                new_uid: "3".into()
            }]
        );
        assert_eq!(
            tracker.track(&watcher::Event::InitDone),
            [PodEvent::Deleted {
                namespace: "shop".into(),
                name: "b".into(),
                uid: "2".into()
            }]
        );
        assert_eq!(
            tracker.track(&watcher::Event::Delete(pod("a", "3"))),
            [PodEvent::Deleted {
                namespace: "shop".into(),
                name: "a".into(),
                uid: "3".into()
            }]
        );
    }

    fn with_rv(mut pod: Pod, rv: u64) -> Pod {
        pod.metadata.resource_version = Some(rv.to_string());
        pod
    }

    #[test]
    fn a_relist_replaces_the_cache_resource_version_and_a_reset_desyncs() {
        let max = Duration::from_secs(5);
        let mut health = Health::default();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(with_rv(pod("a", "1"), 40)),
            watcher::Event::InitDone,
        ] {
            health.saw(&event);
        }
        health.ok();
        assert_eq!(health.cache_rv, 40);
        assert!(health.staleness_reason(max, Instant::now()).is_none());
        health.saw(&watcher::Event::Apply(with_rv(pod("b", "2"), 55)));
        assert_eq!(health.cache_rv, 55);

        // A reset: the cache cannot be trusted until a new list is done,
        // even though the API server answers again.
        health.desync("resourceVersion went back".into());
        health.ok();
        let reason = health.staleness_reason(max, Instant::now()).unwrap();
        assert!(reason.contains("relisting"), "{reason}");
        health.saw(&watcher::Event::Init);
        health.ok();
        assert!(
            health.staleness_reason(max, Instant::now()).is_some(),
            "mid-list"
        );
        health.saw(&watcher::Event::InitApply(with_rv(pod("a", "9"), 3)));
        health.saw(&watcher::Event::InitDone);
        health.ok();
        assert_eq!(health.cache_rv, 3, "the new history's, not the old maximum");
        assert!(health.staleness_reason(max, Instant::now()).is_none());
    }

    #[test]
    fn too_large_and_gone_force_a_relist_other_errors_do_not() {
        let status = |code: u16| {
            let mut status = kube::core::Status::failure("x", "Timeout");
            status.code = code;
            status
        };
        assert!(forces_relist(&watcher::Error::WatchError(Box::new(
            status(504)
        ))));
        assert!(forces_relist(&watcher::Error::WatchStartFailed(
            kube::Error::Api(Box::new(status(504)))
        )));
        assert!(forces_relist(&watcher::Error::WatchError(Box::new(
            status(410)
        ))));
        assert!(!forces_relist(&watcher::Error::WatchError(Box::new(
            status(500)
        ))));
        assert!(!forces_relist(&watcher::Error::NoResourceVersion));
        assert!(describe(&watcher::Error::WatchError(Box::new(status(504)))).contains("504"));
    }

    #[test]
    fn digests_are_read_only_from_well_formed_image_ids() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            digest_of_image_id(&format!("registry.example/app@sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_of_image_id(&format!("docker-pullable://app@sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_of_image_id(&format!("sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(digest_of_image_id("registry.example/app:1.4"), None);
        assert_eq!(
            digest_of_image_id(&format!("app@sha256:{}", &hex[1..])),
            None
        );
        assert_eq!(
            digest_of_image_id(&format!("app@sha256:{}", hex.to_uppercase())),
            None
        );
        assert_eq!(digest_of_image_id(""), None);
    }

    #[test]
    fn freshness_needs_sync_recent_contact_and_no_newer_error() {
        let max = Duration::from_secs(5);
        let mut health = Health::default();
        let now = Instant::now();
        assert!(health.staleness_reason(max, now).is_some(), "not synced");
        health.synced = true;
        assert!(
            health.staleness_reason(max, now).is_some(),
            "never heard from"
        );
        health.ok();
        assert!(health.staleness_reason(max, Instant::now()).is_none());
        assert!(
            health
                .staleness_reason(max, Instant::now() + Duration::from_secs(6))
                .is_some(),
            "too old"
        );
        health.error("connection refused".into());
        assert!(
            health
                .staleness_reason(max, Instant::now())
                .unwrap()
                .contains("unreachable")
        );
        health.ok();
        assert!(
            health.staleness_reason(max, Instant::now()).is_none(),
            "recovered"
        );
    }
}
