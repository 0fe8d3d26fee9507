//! Gate 4: the pod behind the token is live, is the same pod (uid), runs on
//! the node the token names (when it names one), runs as the token's service
//! account, and every image whose content runs in the pod has a digest the
//! policy approves: every container — init, native sidecar (an init
//! container with `restartPolicy: Always`), app and ephemeral (debug) — and
//! every image volume (`spec.volumes[].image`, KEP-4639). A `gitRepo`
//! volume, content cloned at pod start that no digest attests, is refused.
//! What gate 4 does not attest (data volumes: `hostPath`, CSI, PVCs,
//! ConfigMaps) is listed in `docs/design.md`.
//!
//! Fail closed: a view that cannot decide, a container with no status yet,
//! an `imageID` without a digest, an image volume whose content no digest
//! names, or no policy at all is a refusal. Audit mode (an explicit
//! per-policy opt-in) turns a refusal into [`LivePodDecision::AuditOnly`],
//! which callers must log loudly and audit. The node check is gate 2's
//! (the token and the pod disagree about where the pod runs) and audit mode
//! never relaxes it.

use crate::gate::{Gate, Reason, Refusal};
use crate::identity::WorkloadIdentity;
use crate::pod_view::{ContainerKind, ImageVolumeFacts, PodFacts, ViewAnswer};
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
        ContainerKind::Sidecar => "sidecar container",
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
    if let Some(node) = &identity.node
        && facts.node_name.as_deref() != Some(node.name.as_str())
    {
        return Err(Refusal::new(
            Gate::Token,
            Reason::NodeMismatch,
            format!(
                "the token names node {} but pod {}/{} runs on {}",
                node.name,
                facts.namespace,
                facts.name,
                facts.node_name.as_deref().unwrap_or("no node")
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
    if let Some(volume) = facts.git_repo_volumes.first() {
        return Err(refuse(
            Reason::VolumeNotAttested,
            format!("gitRepo volume {volume} brings in content that no image digest attests"),
        ));
    }
    for volume in &facts.image_volumes {
        check_image_volume(volume, policy)?;
    }
    Ok(())
}

/// An image volume's content is named by the digests the kubelet reports it
/// mounted and by a digest in its reference; every one of them must be
/// approved, and at least one must exist (a reference by tag that no
/// status has resolved yet names no content).
fn check_image_volume(volume: &ImageVolumeFacts, policy: &PolicyRecord) -> Result<(), Refusal> {
    let name = &volume.name;
    if volume.mounted.iter().any(Option::is_none) {
        return Err(refuse(
            Reason::ImageWithoutDigest,
            format!("image volume {name} was mounted without a sha256 digest reported"),
        ));
    }
    let reference_digest = volume.reference_digest();
    let mut digests = volume
        .mounted
        .iter()
        .flatten()
        .chain(&reference_digest)
        .peekable();
    if digests.peek().is_none() {
        return Err(refuse(
            Reason::ImageWithoutDigest,
            format!(
                "image volume {name} mounts {} without a sha256 digest (pin the reference by digest)",
                volume.reference
            ),
        ));
    }
    if digests.any(|digest| !policy.digests.contains(digest)) {
        return Err(refuse(
            Reason::ImageNotApproved,
            format!("image volume {name} mounts an image digest that is not approved"),
        ));
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
        Err(refusal)
            if matches!(
                refusal.reason,
                Reason::ViewUnknown | Reason::NoPolicy | Reason::NodeMismatch
            ) =>
        {
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
            credential_id: Some("JTI=4b3c1b8e-0f0e-4d6a-9a51-2f1f0c7d9e11".into()),
            node: Some(crate::identity::NodeRef {
                name: "node-1".into(),
                uid: "node-uid".into(),
            }),
            expires_at: 0,
        }
    }

    fn image_volume(reference: &str, mounted: &[Option<char>]) -> ImageVolumeFacts {
        ImageVolumeFacts {
            name: "tools".into(),
            reference: reference.into(),
            mounted: mounted.iter().map(|d| d.map(digest)).collect(),
        }
    }

    fn with_volume(volume: ImageVolumeFacts) -> ViewAnswer {
        let mut f = facts();
        f.image_volumes.push(volume);
        ViewAnswer::Present(f)
    }

    /// Claim: every image volume's content must have an approved digest,
    /// from the kubelet's report or the reference; a tag alone names no
    /// content; the refusal names the volume.
    #[test]
    fn image_volumes_need_approved_digests() {
        let strict = policy(false);
        let approved = format!("registry.example/tools@{}", digest('a'));
        let unapproved = format!("registry.example/tools@{}", digest('9'));
        let allowed = |answer: ViewAnswer| decide(&answer, &identity(), Some(&strict));
        assert_eq!(
            allowed(with_volume(image_volume(&approved, &[]))),
            Ok(LivePodDecision::Allowed)
        );
        assert_eq!(
            allowed(with_volume(image_volume(
                "registry.example/tools:latest",
                &[Some('a')]
            ))),
            Ok(LivePodDecision::Allowed)
        );
        for (volume, expected) in [
            (
                image_volume("registry.example/tools:latest", &[]),
                Reason::ImageWithoutDigest,
            ),
            (image_volume("", &[]), Reason::ImageWithoutDigest),
            (image_volume(&approved, &[None]), Reason::ImageWithoutDigest),
            (image_volume(&unapproved, &[]), Reason::ImageNotApproved),
            (
                image_volume("registry.example/tools:latest", &[Some('9')]),
                Reason::ImageNotApproved,
            ),
            // What was mounted wins over what the reference promised.
            (
                image_volume(&approved, &[Some('9')]),
                Reason::ImageNotApproved,
            ),
            (
                image_volume("registry.example/tools:1", &[Some('a'), Some('9')]),
                Reason::ImageNotApproved,
            ),
        ] {
            let refusal =
                decide(&with_volume(volume.clone()), &identity(), Some(&strict)).unwrap_err();
            assert_eq!(refusal.reason, expected, "{volume:?}");
            assert_eq!(refusal.gate, Gate::LivePod);
            assert!(
                refusal.detail.contains("image volume tools"),
                "{}",
                refusal.detail
            );
        }
    }

    #[test]
    fn a_git_repo_volume_is_refused() {
        let mut f = facts();
        f.git_repo_volumes.push("src".into());
        let refusal =
            decide(&ViewAnswer::Present(f), &identity(), Some(&policy(false))).unwrap_err();
        assert_eq!(refusal.reason, Reason::VolumeNotAttested);
        assert!(
            refusal.detail.contains("gitRepo volume src"),
            "{}",
            refusal.detail
        );
    }

    /// Claim: a token that names a node must name the node the live pod
    /// runs on (gate 2, never relaxed by audit mode); a token without node
    /// claims (before 1.32) is not asked for one.
    #[test]
    fn the_token_node_must_be_the_pods_node() {
        let elsewhere = {
            let mut f = facts();
            f.node_name = Some("node-2".into());
            ViewAnswer::Present(f)
        };
        for audit_mode in [false, true] {
            let refusal = decide(&elsewhere, &identity(), Some(&policy(audit_mode))).unwrap_err();
            assert_eq!(
                (refusal.gate, refusal.reason),
                (Gate::Token, Reason::NodeMismatch)
            );
            assert!(refusal.detail.contains("node-1") && refusal.detail.contains("node-2"));
        }
        let unscheduled = {
            let mut f = facts();
            f.node_name = None;
            ViewAnswer::Present(f)
        };
        assert_eq!(
            reason(unscheduled, Some(&policy(false))),
            Reason::NodeMismatch
        );
        let old_cluster = WorkloadIdentity {
            node: None,
            ..identity()
        };
        assert_eq!(
            decide(&elsewhere, &old_cluster, Some(&policy(false))),
            Ok(LivePodDecision::Allowed)
        );
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
            node_name: Some("node-1".into()),
            image_volumes: Vec::new(),
            git_repo_volumes: Vec::new(),
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
        let sidecar = reason(
            with(&|f| {
                f.containers
                    .push(container(ContainerKind::Sidecar, "proxy", Some('9')))
            }),
            Some(&strict),
        );
        assert_eq!(sidecar, Reason::ImageNotApproved);
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
            node: None,
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
