//! Every storage call within a time bound, for both engines.
//!
//! A storage that hangs — a frozen or full disk under SQLite, a PostgreSQL
//! server that stopped answering, a lock held by someone else — must not
//! hang the server: a release that cannot be decided is refused
//! (`storage_unavailable`, 503) and `/readyz` says why. [`Bounded`] wraps an
//! engine and gives each call [`Bounded::new`]'s bound; past it the call
//! answers [`StorageError::Timeout`].
//!
//! Each storage trait is declared once, through [`bounded_stores!`]: a
//! method is written as its signature, what it answers and the name of its
//! operation (`fn cluster(&self, name: &str) -> Option<ClusterRecord> =
//! "read cluster";`), and the macro makes both the trait method (answering
//! `impl Future<Output = Result<_, StorageError>> + Send`) and the bounded
//! forwarding of it. A new storage method is one declaration and the
//! engines' implementations; the deadline comes with it.
//!
//! What a timed-out call leaves behind: the engine's work may still finish
//! later (a blocked fsync completes when the disk thaws). That can only
//! add — a `jti` recorded, an audit record of a release that was refused —
//! never take away: a release is answered only after its commit returned.

use std::future::Future;
use std::time::Duration;

use super::{Storage, StorageError, StorageStats};

/// An engine whose every call is bounded in time.
pub struct Bounded<S> {
    pub(super) inner: S,
    bound: Duration,
}

impl<S: Storage> Bounded<S> {
    /// `inner`, each call answering within `bound`.
    pub fn new(inner: S, bound: Duration) -> Self {
        Self { inner, bound }
    }
}

impl<S> Bounded<S> {
    /// `call` within `factor` times the bound, or [`StorageError::Timeout`]
    /// naming `operation`.
    pub(super) async fn within<T>(
        &self,
        operation: &'static str,
        factor: u32,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let bound = self.bound * factor;
        tokio::time::timeout(bound, call)
            .await
            .unwrap_or(Err(StorageError::Timeout {
                operation,
                after: bound,
            }))
    }
}

impl<S: Storage> Storage for Bounded<S> {
    fn stats(&self) -> &StorageStats {
        self.inner.stats()
    }
}

/// Declares a storage trait and its bounded forwarding (see the module
/// documentation). `= "operation" * N` gives a call N times the bound (the
/// export reads the whole log); methods with a body go under `provided`.
macro_rules! bounded_stores {
    (
        $(#[$trait_meta:meta])*
        pub trait $trait:ident {
            $(
                $(#[$meta:meta])*
                fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $answer:ty
                    = $operation:literal $(* $factor:literal)?;
            )*
            $(provided { $($provided:item)* })?
        }
    ) => {
        $(#[$trait_meta])*
        pub trait $trait: Send + Sync {
            $(
                $(#[$meta])*
                fn $name(
                    &self $(, $arg: $ty)*
                ) -> impl Future<Output = Result<$answer, StorageError>> + Send;
            )*
            $($($provided)*)?
        }

        impl<S: $trait> $trait for $crate::storage::Bounded<S> {
            $(
                fn $name(
                    &self $(, $arg: $ty)*
                ) -> impl Future<Output = Result<$answer, StorageError>> + Send {
                    self.within(
                        $operation,
                        1 $(* $factor)?,
                        self.inner.$name($($arg),*),
                    )
                }
            )*
        }
    };
}
pub(super) use bounded_stores;
