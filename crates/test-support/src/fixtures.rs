//! Values many tests build the same way, built here once.
//!
//! [`seal_params`] and [`kubernetes_scope`] are what tests seal a capsule
//! with: Secret `db` of a cluster, namespace and service account, released
//! any number of times, created long ago, never expiring. A test that needs
//! another field says so with struct update syntax:
//!
//! ```
//! use podseal_core::envelope::SealParams;
//! use podseal_test_support::fixtures::{kubernetes_scope, seal_params};
//!
//! let dated = SealParams {
//!     not_after: Some(1_800_000_000),
//!     ..seal_params(kubernetes_scope("prod", "shop", "api"))
//! };
//! assert_eq!(dated.created_at, 1);
//! ```
//!
//! podseal-core's own tests depend on this crate too. Cargo accepts the
//! cycle (a dev-dependency); core's integration tests see one core, and
//! its unit tests, which are another build of core, use only
//! [`crate::testdata`], which holds no core type.

use podseal_core::capsule::{KubernetesScope, RevealMode, Scope};
use podseal_core::envelope::SealParams;

/// The scope tests seal for: Secret `db` (the whole Secret, no data key) of
/// `cluster`, released to pods of `namespace` running as `service_account`.
pub fn kubernetes_scope(cluster: &str, namespace: &str, service_account: &str) -> KubernetesScope {
    KubernetesScope {
        cluster: cluster.into(),
        namespace: namespace.into(),
        service_accounts: vec![service_account.into()],
        name: "db".into(),
        key: None,
    }
}

/// What tests seal with: `scope`, no purpose, released any number of times,
/// created at second 1 (so always in the past), never expiring.
pub fn seal_params(scope: impl Into<Scope>) -> SealParams {
    SealParams {
        scope: scope.into(),
        purpose: None,
        reveal: RevealMode::Many,
        created_at: 1,
        not_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_the_ones_tests_pasted() {
        let params = seal_params(kubernetes_scope("prod", "shop", "api"));
        let Scope::Kubernetes(scope) = &params.scope else {
            panic!("not a Kubernetes scope: {:?}", params.scope);
        };
        assert_eq!(
            (
                scope.cluster.as_str(),
                scope.namespace.as_str(),
                scope.service_accounts.as_slice(),
                scope.name.as_str(),
                scope.key.as_deref(),
            ),
            ("prod", "shop", &["api".to_owned()][..], "db", None)
        );
        assert_eq!(params.purpose, None);
        assert_eq!(params.reveal, RevealMode::Many);
        assert_eq!((params.created_at, params.not_after), (1, None));
    }
}
