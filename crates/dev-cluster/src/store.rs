//! The stand-in's object store, one for every kind as etcd is for the API
//! server: objects kept as JSON under (group, resource, namespace, name),
//! one resourceVersion counter, and a bounded history of changes so that a
//! watch can resume from a recent resourceVersion and a too-old one gets
//! `410 Gone`, as a real API server's watch cache behaves.
//!
//! Namespaces are real: a namespaced object can only be stored in a
//! namespace that exists, and deleting a namespace deletes what is in it.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::fields::{at, put};
use crate::kinds::{self, Kind};
use crate::state::StateDir;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One change, as stored in the history and sent to live watches.
#[derive(Clone)]
pub(crate) struct Change {
    /// The resourceVersion of the change.
    pub resource_version: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The object's kind.
    pub resource: &'static Kind,
    /// The object after the change (for a deletion: as it was, with the new RV).
    pub object: Value,
}

/// Where an object is kept.
type Key = (&'static str, &'static str, String, String);

fn key(kind: &'static Kind, namespace: &str, name: &str) -> Key {
    (
        kind.group,
        kind.plural,
        namespace.to_owned(),
        name.to_owned(),
    )
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// No such object.
    #[error("not found")]
    NotFound,
    /// The name is taken.
    #[error("already exists")]
    AlreadyExists,
    /// The namespace does not exist.
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    /// The object has no name.
    #[error("the object has no name")]
    NoName,
    /// The state directory could not be written: the change is not kept.
    #[error("cannot keep the change: {0}")]
    Storage(#[from] crate::state::StateError),
}

/// Namespaces every cluster starts with.
pub(crate) const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Objects plus history.
pub(crate) struct Store {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Change>,
    history_limit: usize,
    /// The oldest resourceVersion a watch may resume from.
    compacted_to: u64,
    live: broadcast::Sender<Change>,
    /// Where every change is kept, when the stand-in has a state directory.
    state: Option<StateDir>,
}

/// `metadata.name`, `metadata.namespace` of an object.
pub(crate) fn name_of(object: &Value) -> (&str, &str) {
    let meta = &at(object, &["metadata"]);
    (
        at(meta, &["namespace"]).as_str().unwrap_or_default(),
        at(meta, &["name"]).as_str().unwrap_or_default(),
    )
}

impl Store {
    /// A store with the namespaces a new cluster has, keeping
    /// `history_limit` changes, and every change in `state` if given.
    pub fn new(history_limit: usize, state: Option<StateDir>) -> Result<Self, StoreError> {
        let mut store = Self::empty(history_limit, 1, state);
        for name in INITIAL_NAMESPACES {
            let namespace = crate::behaviour::new_namespace(name);
            store.create(
                kinds::of::<k8s_openapi::api::core::v1::Namespace>(),
                namespace,
            )?;
        }
        store.compacted_to = store.resource_version;
        Ok(store)
    }

    /// The store `state` kept, or a new one when it kept none. A restored
    /// store has no history: a watch from before the restart gets 410 and
    /// relists, as after an API server restart.
    pub fn open(history_limit: usize, state: Option<StateDir>) -> Result<Self, StoreError> {
        let saved = match &state {
            Some(dir) => dir.load_objects()?,
            None => None,
        };
        let Some((resource_version, objects)) = saved else {
            return Self::new(history_limit, state);
        };
        let mut store = Self::empty(history_limit, resource_version, state);
        for (kind, object) in objects {
            let (namespace, name) = name_of(&object);
            let key = key(kind, namespace, name);
            store.objects.insert(key, object);
        }
        Ok(store)
    }

    fn empty(history_limit: usize, resource_version: u64, state: Option<StateDir>) -> Self {
        let (live, _) = broadcast::channel(1024);
        Self {
            resource_version,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted_to: resource_version,
            live,
            state,
        }
    }

    /// Keeps the objects in the state directory, if there is one.
    fn save(&self) -> Result<(), StoreError> {
        if let Some(state) = &self.state {
            state.save_objects(self.resource_version, self.objects.values())?;
        }
        Ok(())
    }

    /// The state directory, for a reset to keep using it.
    pub fn state(&self) -> Option<StateDir> {
        self.state.clone()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    fn next_resource_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// One object.
    pub fn get(&self, kind: &'static Kind, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(kind, namespace, name))
    }

    /// Objects of `kind`, optionally in one namespace, by namespace and name.
    pub fn list(&self, kind: &'static Kind, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((group, plural, ns, _), _)| {
                *group == kind.group && *plural == kind.plural && namespace.is_none_or(|n| n == ns)
            })
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Whether namespace `name` exists.
    pub fn namespace_exists(&self, name: &str) -> bool {
        self.get(
            kinds::of::<k8s_openapi::api::core::v1::Namespace>(),
            "",
            name,
        )
        .is_some()
    }

    /// Stores a new object, stamping its resourceVersion.
    pub fn create(&mut self, kind: &'static Kind, object: Value) -> Result<Value, StoreError> {
        let (namespace, name) = name_of(&object);
        if name.is_empty() {
            return Err(StoreError::NoName);
        }
        if kind.namespaced && !self.namespace_exists(namespace) {
            return Err(StoreError::NamespaceNotFound(namespace.to_owned()));
        }
        self.write(kind, object, ChangeKind::Added)
    }

    /// Replaces a stored object, stamping its resourceVersion.
    pub fn replace(&mut self, kind: &'static Kind, object: Value) -> Result<Value, StoreError> {
        self.write(kind, object, ChangeKind::Modified)
    }

    /// Adds (the name must be free) or modifies (the object must exist),
    /// stamps the next resourceVersion, records the change and keeps it.
    fn write(
        &mut self,
        kind: &'static Kind,
        mut object: Value,
        change: ChangeKind,
    ) -> Result<Value, StoreError> {
        let (namespace, name) = name_of(&object);
        let namespace = if kind.namespaced { namespace } else { "" };
        let key = key(kind, namespace, name);
        match (change, self.objects.contains_key(&key)) {
            (ChangeKind::Added, true) => return Err(StoreError::AlreadyExists),
            (ChangeKind::Modified, false) => return Err(StoreError::NotFound),
            _ => {}
        }
        let rv = self.next_resource_version();
        put(
            &mut object,
            &["metadata", "resourceVersion"],
            Value::String(rv.to_string()),
        );
        self.objects.insert(key, object.clone());
        self.record(rv, change, kind, object.clone());
        self.save()?;
        Ok(object)
    }

    /// Removes an object, recording the deletion; a namespace takes what
    /// is in it along.
    pub fn delete(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StoreError> {
        let deleted = self.remove(kind, namespace, name)?;
        self.save()?;
        Ok(deleted)
    }

    fn remove(
        &mut self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StoreError> {
        let namespace = if kind.namespaced { namespace } else { "" };
        let mut object = self
            .objects
            .remove(&key(kind, namespace, name))
            .ok_or(StoreError::NotFound)?;
        if kind.kind == "Namespace" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, _, ns, _)| ns == name)
                .cloned()
                .collect();
            for (group, plural, ns, member) in inside {
                if let Some(member_kind) = kinds::table()
                    .iter()
                    .find(|k| k.group == group && k.plural == plural)
                {
                    self.remove(member_kind, &ns, &member)?;
                }
            }
        }
        let rv = self.next_resource_version();
        put(
            &mut object,
            &["metadata", "resourceVersion"],
            Value::String(rv.to_string()),
        );
        if at(&object, &["metadata", "deletionTimestamp"]).is_null() {
            put(
                &mut object,
                &["metadata", "deletionTimestamp"],
                crate::behaviour::now(),
            );
        }
        self.record(rv, ChangeKind::Deleted, kind, object.clone());
        Ok(object)
    }

    /// One object as its `k8s-openapi` type.
    pub fn get_as<T>(&self, namespace: &str, name: &str) -> Option<T>
    where
        T: DeserializeOwned + 'static,
    {
        let object = self.get(kinds::of::<T>(), namespace, name)?;
        serde_json::from_value(object.clone()).ok()
    }

    /// Creates or replaces a typed object, as a control verb writes it.
    pub fn put_as<T>(&mut self, object: &T) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let kind = kinds::of::<T>();
        let value = serde_json::to_value(object).map_err(|_| StoreError::NoName)?;
        let (namespace, name) = name_of(&value);
        let stored = if self.get(kind, namespace, name).is_some() {
            self.replace(kind, value)?
        } else {
            self.create(kind, value)?
        };
        serde_json::from_value(stored).map_err(|_| StoreError::NoName)
    }

    fn record(
        &mut self,
        resource_version: u64,
        kind: ChangeKind,
        resource: &'static Kind,
        object: Value,
    ) {
        let change = Change {
            resource_version,
            kind,
            resource,
            object,
        };
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
    pub fn changes_since(&self, since: u64) -> Option<(Vec<Change>, broadcast::Receiver<Change>)> {
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
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.live.subscribe()
    }
}
