//! Which container of a live pod a session request enrols from: the one a
//! DPoP key is pinned to, by its running instance (`containerID`).
//!
//! A container may enrol when its spec sets `PODSEAL_CONTAINER` to its own
//! name (a literal value; a container's env cannot change in a running
//! pod, so the set is fixed when the pod is created by whoever wrote its
//! spec — the party gate 4 already trusts with the images). A pod that
//! declares no container enrols from its one app container only, as one
//! pin per pod did before. So a stolen API key and token cannot open a
//! second pin slot by naming a sidecar that does not run podseal: the
//! slots are exactly the declared containers, or the one container.
//!
//! Fail closed: an unknown name, an undeclared container, a pod with
//! several containers and no name given, or a container that is not
//! running is a refusal, also in audit mode (the pin is not one of the
//! checks audit mode relaxes).

use crate::gate::{Gate, Reason, Refusal};
use crate::pod_view::{CONTAINER_VARIABLE, ContainerFacts, ContainerKind, PodFacts, ViewAnswer};

fn refuse(reason: Reason, detail: String) -> Refusal {
    Refusal::new(Gate::LivePod, reason, detail)
}

/// The container a request from `declared` (its `PODSEAL_CONTAINER`, if it
/// sent one) enrols from, running or not.
pub fn choose<'a>(
    facts: &'a PodFacts,
    declared: Option<&str>,
) -> Result<&'a ContainerFacts, Refusal> {
    let declaring: Vec<&str> = facts
        .containers
        .iter()
        .filter(|c| c.declares_podseal)
        .map(|c| c.name.as_str())
        .collect();
    match declared {
        Some(name) => {
            let container = facts
                .containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    refuse(
                        Reason::ContainerUnknown,
                        format!(
                            "pod {}/{} has no container named {name:?} (the request's {CONTAINER_VARIABLE})",
                            facts.namespace, facts.name
                        ),
                    )
                })?;
            if container.declares_podseal {
                return Ok(container);
            }
            let sole_app = declaring.is_empty() && sole_app_container(facts) == Some(name);
            if sole_app {
                return Ok(container);
            }
            Err(refuse(
                Reason::ContainerNotDeclared,
                format!(
                    "container {name} of pod {}/{} does not set {CONTAINER_VARIABLE}={name} in its spec; only containers that declare it enrol",
                    facts.namespace, facts.name
                ),
            ))
        }
        None if !declaring.is_empty() => Err(refuse(
            Reason::ContainerRequired,
            format!(
                "pod {}/{} declares its podseal containers ({}): the request must name its own ({CONTAINER_VARIABLE})",
                facts.namespace,
                facts.name,
                declaring.join(", ")
            ),
        )),
        None => {
            let name = sole_app_container(facts).ok_or_else(|| {
                refuse(
                    Reason::ContainerRequired,
                    format!(
                        "pod {}/{} has several containers: set {CONTAINER_VARIABLE} to the container's own name in the env of each one that runs podseal",
                        facts.namespace, facts.name
                    ),
                )
            })?;
            facts
                .containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| refuse(Reason::ContainerUnknown, "no app container".into()))
        }
    }
}

/// The name of the pod's app container when it has exactly one.
fn sole_app_container(facts: &PodFacts) -> Option<&str> {
    let mut apps = facts
        .containers
        .iter()
        .filter(|c| c.kind == ContainerKind::App);
    match (apps.next(), apps.next()) {
        (Some(only), None) => Some(only.name.as_str()),
        _ => None,
    }
}

/// The `containerID` of `container`'s running instance in `answer`, if the
/// pod is present and the container runs.
pub fn running_id<'a>(answer: &'a ViewAnswer, container: &str) -> Option<&'a str> {
    match answer {
        ViewAnswer::Present(facts) => facts
            .containers
            .iter()
            .find(|c| c.name == container)
            .and_then(|c| c.running_id.as_deref()),
        _ => None,
    }
}

/// The refusal for a container that is not running (after the wait).
pub fn not_running(container: &str) -> Refusal {
    refuse(
        Reason::ContainerNotRunning,
        format!("container {container} is not running (waiting, terminated, or not reported yet)"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;

    fn container(kind: ContainerKind, name: &str, declares: bool) -> ContainerFacts {
        ContainerFacts {
            kind,
            name: name.into(),
            image: format!("registry.example/{name}:1"),
            image_id: Some(format!("registry.example/{name}@sha256:{}", "a".repeat(64))),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            running_id: Some(format!("containerd://{name}-1")),
            restart_count: 0,
            declares_podseal: declares,
        }
    }

    fn pod(containers: Vec<ContainerFacts>) -> PodFacts {
        PodFacts {
            namespace: "shop".into(),
            name: "api-0".into(),
            uid: "uid".into(),
            phase: Some("Running".into()),
            terminating: false,
            service_account: Some("api".into()),
            node_name: Some("node-1".into()),
            image_volumes: Vec::new(),
            git_repo_volumes: Vec::new(),
            containers,
        }
    }

    fn reason(result: Result<&ContainerFacts, Refusal>) -> Reason {
        result.unwrap_err().reason
    }

    #[test]
    fn a_pod_with_one_container_and_no_declaration_enrols_from_that_container() {
        let facts = pod(vec![
            container(ContainerKind::Init, "migrate", false),
            container(ContainerKind::App, "api", false),
        ]);
        assert_eq!(choose(&facts, None).unwrap().name, "api");
        assert_eq!(choose(&facts, Some("api")).unwrap().name, "api");
        // Not the init container, which declares nothing.
        assert_eq!(
            reason(choose(&facts, Some("migrate"))),
            Reason::ContainerNotDeclared
        );
        assert_eq!(
            reason(choose(&facts, Some("nope"))),
            Reason::ContainerUnknown
        );
    }

    #[test]
    fn a_pod_that_declares_enrols_from_the_declared_containers_only() {
        let facts = pod(vec![
            container(ContainerKind::App, "api", true),
            container(ContainerKind::App, "worker", true),
            container(ContainerKind::App, "proxy", false),
        ]);
        assert_eq!(choose(&facts, Some("api")).unwrap().name, "api");
        assert_eq!(choose(&facts, Some("worker")).unwrap().name, "worker");
        // A sidecar that does not run podseal is no pin slot for a thief.
        assert_eq!(
            reason(choose(&facts, Some("proxy"))),
            Reason::ContainerNotDeclared
        );
        let refusal = choose(&facts, None).unwrap_err();
        assert_eq!(refusal.reason, Reason::ContainerRequired);
        assert!(refusal.detail.contains("api, worker"), "{}", refusal.detail);

        // One declared container among one app container: the undeclared
        // app container is no slot either.
        let facts = pod(vec![
            container(ContainerKind::Init, "fetch", true),
            container(ContainerKind::App, "api", false),
        ]);
        assert_eq!(choose(&facts, Some("fetch")).unwrap().name, "fetch");
        assert_eq!(
            reason(choose(&facts, Some("api"))),
            Reason::ContainerNotDeclared
        );
        assert_eq!(reason(choose(&facts, None)), Reason::ContainerRequired);
    }

    #[test]
    fn several_containers_and_no_declaration_need_a_name() {
        let facts = pod(vec![
            container(ContainerKind::App, "api", false),
            container(ContainerKind::App, "proxy", false),
        ]);
        assert_eq!(reason(choose(&facts, None)), Reason::ContainerRequired);
        assert_eq!(
            reason(choose(&facts, Some("api"))),
            Reason::ContainerNotDeclared
        );
    }

    #[test]
    fn only_a_running_container_has_an_instance() {
        let mut facts = pod(vec![container(ContainerKind::App, "api", false)]);
        let answer = ViewAnswer::Present(facts.clone());
        assert_eq!(running_id(&answer, "api"), Some("containerd://api-1"));
        assert_eq!(running_id(&answer, "other"), None);
        facts.containers[0].running_id = None;
        assert_eq!(running_id(&ViewAnswer::Present(facts), "api"), None);
        assert_eq!(running_id(&ViewAnswer::Absent, "api"), None);
    }
}
