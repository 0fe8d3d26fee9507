//! The stand-in's object store: pods and service accounts, one global
//! resourceVersion counter, and a bounded history of pod changes so that a
//! watch can resume from a recent resourceVersion and a too-old one gets
//! `410 Gone`, as a real API server's watch cache behaves.

use std::collections::{BTreeMap, VecDeque};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::broadcast;

/// What happened to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One pod change, as stored in the history and sent to live watches.
#[derive(Debug, Clone)]
pub struct PodChange {
    /// The resourceVersion of the change.
    pub resource_version: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The pod after the change (for a deletion: as it was, with the new RV).
    pub pod: Pod,
}

/// Key of a namespaced object.
pub type ObjectKey = (String, String);

/// Objects plus history.
pub struct Store {
    resource_version: u64,
    pods: BTreeMap<ObjectKey, Pod>,
    service_accounts: BTreeMap<ObjectKey, ServiceAccount>,
    history: VecDeque<PodChange>,
    history_limit: usize,
    /// The oldest resourceVersion a watch may resume from.
    compacted_to: u64,
    live: broadcast::Sender<PodChange>,
}

impl Store {
    /// An empty store keeping `history_limit` pod changes.
    pub fn new(history_limit: usize) -> Self {
        let (live, _) = broadcast::channel(1024);
        Self {
            resource_version: 1,
            pods: BTreeMap::new(),
            service_accounts: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted_to: 1,
            live,
        }
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    fn next_resource_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// All pods, optionally in one namespace.
    pub fn pods(&self, namespace: Option<&str>) -> Vec<Pod> {
        self.pods
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, pod)| pod.clone())
            .collect()
    }

    /// One pod.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Service accounts, optionally in one namespace.
    pub fn service_accounts(&self, namespace: Option<&str>) -> Vec<ServiceAccount> {
        self.service_accounts
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, sa)| sa.clone())
            .collect()
    }

    /// One service account.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<ServiceAccount> {
        self.service_accounts
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Stores a service account (stamping its resourceVersion).
    pub fn put_service_account(&mut self, mut sa: ServiceAccount) -> ServiceAccount {
        let rv = self.next_resource_version();
        sa.metadata.resource_version = Some(rv.to_string());
        let key = (
            sa.metadata.namespace.clone().unwrap_or_default(),
            sa.metadata.name.clone().unwrap_or_default(),
        );
        self.service_accounts.insert(key, sa.clone());
        sa
    }

    /// Adds or replaces a pod, recording the change.
    pub fn put_pod(&mut self, mut pod: Pod) -> Pod {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let kind = if self.pods.contains_key(&key) {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        let rv = self.next_resource_version();
        pod.metadata.resource_version = Some(rv.to_string());
        self.pods.insert(key, pod.clone());
        self.record(PodChange {
            resource_version: rv,
            kind,
            pod: pod.clone(),
        });
        pod
    }

    /// Removes a pod, recording the deletion.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> Option<Pod> {
        let mut pod = self.pods.remove(&(namespace.to_owned(), name.to_owned()))?;
        let rv = self.next_resource_version();
        pod.metadata.resource_version = Some(rv.to_string());
        pod.metadata
            .deletion_timestamp
            .get_or_insert_with(|| Time(jiff::Timestamp::now()));
        self.record(PodChange {
            resource_version: rv,
            kind: ChangeKind::Deleted,
            pod: pod.clone(),
        });
        Some(pod)
    }

    fn record(&mut self, change: PodChange) {
        // No receiver is fine: nobody is watching.
        let _ = self.live.send(change.clone());
        self.history.push_back(change);
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_to = dropped.resource_version;
            }
        }
    }

    /// The oldest resourceVersion still in the history.
    pub fn compacted_to(&self) -> u64 {
        self.compacted_to
    }

    /// Forgets all history: every watch from an older resourceVersion gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_to = self.resource_version;
    }

    /// Changes after `since`, and a receiver for live ones, taken atomically;
    /// `None` when `since` is older than the kept history (410 Gone).
    pub fn changes_since(
        &self,
        since: u64,
    ) -> Option<(Vec<PodChange>, broadcast::Receiver<PodChange>)> {
        if since < self.compacted_to {
            return None;
        }
        let replay = self
            .history
            .iter()
            .filter(|c| c.resource_version > since)
            .cloned()
            .collect();
        Some((replay, self.live.subscribe()))
    }

    /// A receiver for live changes only.
    pub fn subscribe(&self) -> broadcast::Receiver<PodChange> {
        self.live.subscribe()
    }
}
