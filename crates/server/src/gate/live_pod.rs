//! Gate 4: the pod behind the token is live, is the same pod (uid), runs as
//! the token's service account, and every container — init, app, sidecar
//! and ephemeral (debug) — runs an image whose digest the policy approves.
//!
//! Fail closed: a view that cannot decide, a container with no status yet,
//! an `imageID` without a digest, or no policy at all is a refusal. Audit
//! mode (an explicit per-policy opt-in) turns a refusal into
//! [`LivePodDecision::AuditOnly`], which callers must log loudly and audit.

use crate::gate::{Gate, Reason, Refusal};
use crate::identity::WorkloadIdentity;
use crate::pod_view::{ContainerKind, PodFacts, ViewAnswer};
use crate::storage::PolicyRecord;

/// Gate 4's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LivePodDecision {
    /// Every check passed.
    Allowed,
    /// Strict mode would refuse with this; the policy is in audit mode.
    AuditOnly(Refusal),
}

fn refuse(reason: Reason, detail: String) -> Refusal {
    Refusal::new(Gate::LivePod, reason, detail)
}

fn kind_name(kind: ContainerKind) -> &'static str {
    match kind {
        ContainerKind::Init => "init container",
        ContainerKind::App => "container",
        ContainerKind::Ephemeral => "ephemeral (debug) container",
    }
}

/// Checks the facts only (no policy mode applied).
fn check(
    answer: &ViewAnswer,
    identity: &WorkloadIdentity,
    policy: Option<&PolicyRecord>,
) -> Result<(), Refusal> {
    let facts: &PodFacts = match answer {
        ViewAnswer::Unknown { reason } => {
            // The reason (API server errors, addresses) is for the operator's
            // log and /readyz, not for the client.
            tracing::warn!(%reason, "pod view cannot decide: refusing");
            return Err(refuse(
                Reason::ViewUnknown,
                "the cluster's pod view cannot decide right now".into(),
            ));
        }
        ViewAnswer::Absent => {
            return Err(refuse(
                Reason::PodNotFound,
                format!(
                    "pod {}/{} does not exist",
                    identity.namespace, identity.pod_name
                ),
            ));
        }
        ViewAnswer::Present(facts) => facts,
    };
    if facts.uid != identity.pod_uid {
        return Err(refuse(
            Reason::PodUidMismatch,
            format!(
                "pod {}/{} is not the pod the token was issued to (recreated?)",
                facts.namespace, facts.name
            ),
        ));
    }
    if facts.terminating {
        return Err(refuse(
            Reason::PodTerminating,
            format!("pod {}/{} is being deleted", facts.namespace, facts.name),
        ));
    }
    if !facts.is_running() {
        let phase = facts.phase.as_deref().unwrap_or("unknown");
        return Err(refuse(
            Reason::PodNotRunning,
            format!(
                "pod {}/{} is {phase}, not Running",
                facts.namespace, facts.name
            ),
        ));
    }
    if facts.service_account.as_deref() != Some(identity.service_account.as_str()) {
        return Err(refuse(
            Reason::ServiceAccountMismatch,
            "the pod does not run as the token's service account".into(),
        ));
    }
    let policy = policy.ok_or_else(|| {
        refuse(
            Reason::NoPolicy,
            format!(
                "no digest policy for {}/{}",
                identity.namespace, identity.service_account
            ),
        )
    })?;
    for container in &facts.containers {
        let what = format!("{} {}", kind_name(container.kind), container.name);
        if container.image_id.is_none() {
            return Err(refuse(
                Reason::ContainerWithoutStatus,
                format!("{what} has no status yet"),
            ));
        }
        let Some(digest) = &container.digest else {
            return Err(refuse(
                Reason::ImageWithoutDigest,
                format!("{what} runs {} without a sha256 digest", container.image),
            ));
        };
        if !policy.digests.iter().any(|approved| approved == digest) {
            let reason = if container.kind == ContainerKind::Ephemeral {
                Reason::DebugContainerNotApproved
            } else {
                Reason::ImageNotApproved
            };
            return Err(refuse(
                reason,
                format!("{what} runs an image digest that is not approved"),
            ));
        }
    }
    Ok(())
}

/// Gate 4 with the policy's mode applied. The view being unable to decide,
/// and a missing policy, are refused even in audit mode: audit mode relaxes
/// the digest and pod checks, never the ability to decide.
pub fn decide(
    answer: &ViewAnswer,
    identity: &WorkloadIdentity,
    policy: Option<&PolicyRecord>,
) -> Result<LivePodDecision, Refusal> {
    match check(answer, identity, policy) {
        Ok(()) => Ok(LivePodDecision::Allowed),
        Err(refusal) if matches!(refusal.reason, Reason::ViewUnknown | Reason::NoPolicy) => {
            Err(refusal)
        }
        Err(refusal) if policy.is_some_and(|p| p.audit_mode) => {
            Ok(LivePodDecision::AuditOnly(refusal))
        }
        Err(refusal) => Err(refusal),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::pod_view::ContainerFacts;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn identity() -> WorkloadIdentity {
        WorkloadIdentity {
            namespace: "shop".into(),
            service_account: "api".into(),
            service_account_uid: "sa-uid".into(),
            pod_name: "api-0".into(),
            pod_uid: "pod-uid".into(),
            expires_at: 0,
        }
    }

    fn container(kind: ContainerKind, name: &str, d: Option<char>) -> ContainerFacts {
        ContainerFacts {
            kind,
            name: name.into(),
            image: format!("registry.example/{name}:1"),
            image_id: Some(match d {
                Some(c) => format!("registry.example/{name}@{}", digest(c)),
                None => format!("registry.example/{name}:1"),
            }),
            digest: d.map(digest),
            running_id: Some(format!("containerd://{name}")),
            restart_count: 0,
            declares_podseal: false,
        }
    }

    fn facts() -> PodFacts {
        PodFacts {
            namespace: "shop".into(),
            name: "api-0".into(),
            uid: "pod-uid".into(),
            phase: Some("Running".into()),
            terminating: false,
            service_account: Some("api".into()),
            containers: vec![
                container(ContainerKind::Init, "migrate", Some('1')),
                container(ContainerKind::App, "api", Some('a')),
            ],
        }
    }

    fn policy(audit_mode: bool) -> PolicyRecord {
        PolicyRecord {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            digests: vec![digest('1'), digest('a')],
            audit_mode,
            require_nonce: false,
            updated_at: 0,
        }
    }

    fn reason(answer: ViewAnswer, policy: Option<&PolicyRecord>) -> Reason {
        decide(&answer, &identity(), policy).unwrap_err().reason
    }

    #[test]
    fn a_live_approved_pod_passes() {
        assert_eq!(
            decide(
                &ViewAnswer::Present(facts()),
                &identity(),
                Some(&policy(false))
            ),
            Ok(LivePodDecision::Allowed)
        );
    }

    #[test]
    fn every_failure_refuses_with_its_reason() {
        let strict = policy(false);
        let with = |edit: &dyn Fn(&mut PodFacts)| {
            let mut f = facts();
            edit(&mut f);
            ViewAnswer::Present(f)
        };
        assert_eq!(
            reason(
                ViewAnswer::Unknown {
                    reason: "stale".into()
                },
                Some(&strict)
            ),
            Reason::ViewUnknown
        );
        assert_eq!(
            reason(ViewAnswer::Absent, Some(&strict)),
            Reason::PodNotFound
        );
        assert_eq!(
            reason(with(&|f| f.uid = "other".into()), Some(&strict)),
            Reason::PodUidMismatch
        );
        assert_eq!(
            reason(with(&|f| f.phase = Some("Pending".into())), Some(&strict)),
            Reason::PodNotRunning
        );
        assert_eq!(
            reason(with(&|f| f.terminating = true), Some(&strict)),
            Reason::PodTerminating
        );
        assert_eq!(
            reason(
                with(&|f| f.service_account = Some("default".into())),
                Some(&strict)
            ),
            Reason::ServiceAccountMismatch
        );
        assert_eq!(reason(ViewAnswer::Present(facts()), None), Reason::NoPolicy);
        assert_eq!(
            reason(with(&|f| f.containers[0].image_id = None), Some(&strict)),
            Reason::ContainerWithoutStatus
        );
        assert_eq!(
            reason(
                with(&|f| f
                    .containers
                    .push(container(ContainerKind::App, "sidecar", None))),
                Some(&strict)
            ),
            Reason::ImageWithoutDigest
        );
        assert_eq!(
            reason(
                with(&|f| f.containers[0] = container(ContainerKind::Init, "migrate", Some('9'))),
                Some(&strict)
            ),
            Reason::ImageNotApproved
        );
        assert_eq!(
            reason(
                with(&|f| f
                    .containers
                    .push(container(ContainerKind::App, "sidecar", Some('9')))),
                Some(&strict)
            ),
            Reason::ImageNotApproved
        );
        let debugged = with(&|f| {
            f.containers
                .push(container(ContainerKind::Ephemeral, "debugger", Some('d')))
        });
        assert_eq!(
            reason(debugged, Some(&strict)),
            Reason::DebugContainerNotApproved
        );
    }

    #[test]
    fn an_undecidable_view_keeps_its_reason_out_of_the_refusal() {
        let answer = ViewAnswer::Unknown {
            reason: "API server unreachable: tcp connect error 10.0.0.1:6443".into(),
        };
        let refusal = decide(&answer, &identity(), Some(&policy(false))).unwrap_err();
        assert_eq!(refusal.reason, Reason::ViewUnknown);
        assert!(!refusal.detail.contains("10.0.0.1"), "{}", refusal.detail);
    }

    #[test]
    fn audit_mode_records_instead_of_refusing_but_never_decides_blind() {
        let audit = policy(true);
        let debugged = {
            let mut f = facts();
            f.containers
                .push(container(ContainerKind::Ephemeral, "debugger", Some('d')));
            ViewAnswer::Present(f)
        };
        match decide(&debugged, &identity(), Some(&audit)).unwrap() {
            LivePodDecision::AuditOnly(refusal) => {
                assert_eq!(refusal.reason, Reason::DebugContainerNotApproved)
            }
            other => panic!("expected audit-only, got {other:?}"),
        }
        assert_eq!(
            reason(
                ViewAnswer::Unknown {
                    reason: "stale".into()
                },
                Some(&audit)
            ),
            Reason::ViewUnknown
        );
    }

    #[test]
    fn the_documented_debug_pod_is_refused() {
        let file = podseal_test_support::testdata::shared_json(
            "kubernetes/pod-with-ephemeral-containers.json",
        );
        let pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(file["pod"].clone()).unwrap();
        let facts = crate::pod_view::pod_facts(&pod);
        let identity = WorkloadIdentity {
            namespace: "kube-system".into(),
            service_account: "coredns".into(),
            pod_uid: facts.uid.clone(),
            pod_name: facts.name.clone(),
            ..identity()
        };
        let app_digests: Vec<String> = facts
            .containers
            .iter()
            .filter(|c| c.kind == ContainerKind::App)
            .filter_map(|c| c.digest.clone())
            .collect();
        let policy = PolicyRecord {
            namespace: "kube-system".into(),
            service_account: "coredns".into(),
            digests: app_digests,
            ..policy(false)
        };
        let refusal = decide(&ViewAnswer::Present(facts), &identity, Some(&policy)).unwrap_err();
        assert_eq!(refusal.reason, Reason::DebugContainerNotApproved);
    }
}
