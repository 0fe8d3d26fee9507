//! Building pods the way the kubelet and API server would show them: a spec
//! from the control verbs, then the status a node reports as containers start.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, EnvVar, EphemeralContainer, ImageVolumeSource,
    ImageVolumeStatus, Pod, PodSpec, PodStatus, ServiceAccount, Volume, VolumeMount,
    VolumeMountStatus, VolumeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// A container to run: its image reference and, when the runtime resolved
/// one, the image digest reported back in `imageID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerImage {
    /// Container name.
    pub name: String,
    /// Image as written in the spec, e.g. `registry.example/shop/api:1.4`.
    pub image: String,
    /// `sha256:<64 hex>` the runtime resolved; `None` reports a tag only.
    #[serde(default)]
    pub digest: Option<String>,
    /// Environment variables of the container's spec (literal values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl ContainerImage {
    /// `imageID` as a container runtime reports it: `repo@sha256:…`.
    pub fn image_id(&self) -> String {
        let repository = strip_tag(&self.image);
        match &self.digest {
            Some(digest) => format!("{repository}@{digest}"),
            None => self.image.clone(),
        }
    }
}

fn strip_tag(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

/// An image volume (`spec.volumes[].image`, KEP-4639, GA in 1.36): an OCI
/// image's file system mounted into every app and sidecar container at
/// `/volumes/<name>`, read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageVolume {
    /// Volume name.
    pub name: String,
    /// `image.reference`, by tag or by digest.
    pub reference: String,
    /// `sha256:<64 hex>` the kubelet reports it mounted, in each mount's
    /// `volumeStatus.image.imageRef` (KEP-5365, alpha in 1.36); `None`
    /// reports nothing, as a 1.36 kubelet without that feature gate does.
    #[serde(default)]
    pub mounted_digest: Option<String>,
}

impl ImageVolume {
    fn image_ref(&self) -> Option<String> {
        let digest = self.mounted_digest.as_ref()?;
        Some(format!("{}@{digest}", strip_tag(&self.reference)))
    }
}

/// What a control verb needs to create a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodTemplate {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Service account the pod runs as.
    pub service_account: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Init containers.
    #[serde(default)]
    pub init_containers: Vec<ContainerImage>,
    /// Native sidecars: init containers with `restartPolicy: Always`, which
    /// start before and keep running beside the app containers.
    #[serde(default)]
    pub sidecars: Vec<ContainerImage>,
    /// App and sidecar containers.
    pub containers: Vec<ContainerImage>,
    /// Image volumes, mounted into every app and sidecar container.
    #[serde(default)]
    pub image_volumes: Vec<ImageVolume>,
    /// The node the pod is scheduled on (`spec.nodeName`); `None` is the
    /// stand-in's one node, `dev-node-1`.
    #[serde(default)]
    pub node: Option<String>,
}

/// The node pods are scheduled on unless their template names another.
pub const DEFAULT_NODE: &str = "dev-node-1";

impl PodTemplate {
    /// `spec.nodeName`.
    pub fn node_name(&self) -> &str {
        self.node.as_deref().unwrap_or(DEFAULT_NODE)
    }
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use rsa::rand_core::RngCore;
    let mut bytes = [0u8; N];
    rsa::rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A random RFC 4122 version 4 UUID, as Kubernetes uses for uids.
pub fn new_uid() -> String {
    let mut bytes = random_bytes::<16>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn mount_path(volume: &ImageVolume) -> String {
    format!("/volumes/{}", volume.name)
}

fn container(image: &ContainerImage, volumes: &[ImageVolume]) -> Container {
    let mounts: Vec<VolumeMount> = volumes
        .iter()
        .map(|volume| VolumeMount {
            name: volume.name.clone(),
            mount_path: mount_path(volume),
            read_only: Some(true),
            ..VolumeMount::default()
        })
        .collect();
    let env: Vec<EnvVar> = image
        .env
        .iter()
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            value_from: None,
        })
        .collect();
    Container {
        name: image.name.clone(),
        image: Some(image.image.clone()),
        env: (!env.is_empty()).then_some(env),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    }
}

fn sidecar(image: &ContainerImage, volumes: &[ImageVolume]) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(image, volumes)
    }
}

/// A new pod as the API server stores it on creation: Pending, no statuses.
pub fn new_pod(template: &PodTemplate) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(template.name.clone()),
            namespace: Some(template.namespace.clone()),
            uid: Some(new_uid()),
            creation_timestamp: Some(now()),
            labels: (!template.labels.is_empty()).then(|| template.labels.clone()),
            annotations: Some(BTreeMap::from([(
                TEMPLATE_ANNOTATION.to_owned(),
                serde_json::to_string(template).unwrap_or_default(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some(template.service_account.clone()),
            node_name: Some(template.node_name().to_owned()),
            init_containers: (!template.init_containers.is_empty()
                || !template.sidecars.is_empty())
            .then(|| {
                let init = template.init_containers.iter().map(|c| container(c, &[]));
                let sidecars = template
                    .sidecars
                    .iter()
                    .map(|c| sidecar(c, &template.image_volumes));
                init.chain(sidecars).collect()
            }),
            containers: template
                .containers
                .iter()
                .map(|c| container(c, &template.image_volumes))
                .collect(),
            volumes: (!template.image_volumes.is_empty()).then(|| {
                template
                    .image_volumes
                    .iter()
                    .map(|volume| Volume {
                        name: volume.name.clone(),
                        image: Some(ImageVolumeSource {
                            reference: Some(volume.reference.clone()),
                            pull_policy: Some("IfNotPresent".into()),
                        }),
                        ..Volume::default()
                    })
                    .collect()
            }),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        }),
    }
}

/// The annotation that keeps the template, so `recreate` can rebuild the pod.
pub const TEMPLATE_ANNOTATION: &str = "dev-cluster.podseal.dev/template";

fn running_status(image: &ContainerImage, container_id: &str) -> ContainerStatus {
    ContainerStatus {
        name: image.name.clone(),
        image: image.image.clone(),
        image_id: image.image_id(),
        container_id: Some(format!("containerd://{container_id}")),
        ready: true,
        started: Some(true),
        restart_count: 0,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now()),
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn completed_status(image: &ContainerImage, container_id: &str) -> ContainerStatus {
    ContainerStatus {
        ready: false,
        started: Some(false),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 0,
                reason: Some("Completed".into()),
                ..Default::default()
            }),
            ..ContainerState::default()
        }),
        ..running_status(image, container_id)
    }
}

fn container_id() -> String {
    new_uid().replace('-', "").repeat(2)
}

/// The mounts' status of a container that mounts `volumes`: what a kubelet
/// reports in `volumeMounts`, with `volumeStatus.image.imageRef` for the
/// image volumes it resolved (KEP-5365).
fn mount_statuses(volumes: &[ImageVolume]) -> Option<Vec<VolumeMountStatus>> {
    (!volumes.is_empty()).then(|| {
        volumes
            .iter()
            .map(|volume| VolumeMountStatus {
                name: volume.name.clone(),
                mount_path: mount_path(volume),
                read_only: Some(true),
                recursive_read_only: Some("Disabled".into()),
                volume_status: volume.image_ref().map(|image_ref| VolumeStatus {
                    image: Some(ImageVolumeStatus { image_ref }),
                }),
            })
            .collect()
    })
}

/// The pod as the kubelet reports it once every container started: init
/// containers completed, native sidecars and app containers running.
pub fn mark_running(pod: &mut Pod, template: &PodTemplate) {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.phase = Some("Running".into());
    status.pod_ip = Some("10.244.0.17".into());
    status.start_time.get_or_insert_with(now);
    let volumes = &template.image_volumes;
    let running = |c: &ContainerImage| ContainerStatus {
        volume_mounts: mount_statuses(volumes),
        ..running_status(c, &container_id())
    };
    status.init_container_statuses =
        (!template.init_containers.is_empty() || !template.sidecars.is_empty()).then(|| {
            let init = template
                .init_containers
                .iter()
                .map(|c| completed_status(c, &container_id()));
            init.chain(template.sidecars.iter().map(running)).collect()
        });
    status.container_statuses = Some(template.containers.iter().map(running).collect());
}

/// The status of a container whose process exited, as the kubelet reports
/// it until the restart: waiting in back-off, the ended instance in
/// `lastState`. False when the pod has no running container of that name.
pub fn container_exited(pod: &mut Pod, container: &str, exit_code: i32) -> bool {
    let Some(status) = container_status(pod, container) else {
        return false;
    };
    let Some(running) = status.state.as_ref().and_then(|s| s.running.clone()) else {
        return false;
    };
    status.ready = false;
    status.started = Some(false);
    status.last_state = Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.into()),
            container_id: status.container_id.clone(),
            started_at: running.started_at,
            finished_at: Some(now()),
            ..Default::default()
        }),
        ..ContainerState::default()
    });
    status.state = Some(ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some("CrashLoopBackOff".into()),
            message: Some(format!("back-off restarting failed container {container}")),
        }),
        ..ContainerState::default()
    });
    true
}

/// The status of a container the kubelet started again after it exited:
/// running, a new `containerID`, `restartCount` + 1. False when the pod has
/// no container of that name that is waiting to restart.
pub fn container_restarted(pod: &mut Pod, container: &str) -> bool {
    let Some(status) = container_status(pod, container) else {
        return false;
    };
    if status.state.as_ref().is_none_or(|s| s.waiting.is_none()) {
        return false;
    }
    status.ready = true;
    status.started = Some(true);
    status.restart_count += 1;
    status.container_id = Some(format!("containerd://{}", container_id()));
    status.state = Some(ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(now()),
        }),
        ..ContainerState::default()
    });
    true
}

fn container_status<'a>(pod: &'a mut Pod, container: &str) -> Option<&'a mut ContainerStatus> {
    let status = pod.status.as_mut()?;
    [
        status.init_container_statuses.as_mut(),
        status.container_statuses.as_mut(),
        status.ephemeral_container_statuses.as_mut(),
    ]
    .into_iter()
    .flatten()
    .flat_map(|list| list.iter_mut())
    .find(|s| s.name == container)
}

/// Adds a debug container to a running pod, as `kubectl debug` does.
pub fn add_ephemeral(pod: &mut Pod, image: &ContainerImage, target: Option<String>) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    spec.ephemeral_containers
        .get_or_insert_with(Vec::new)
        .push(EphemeralContainer {
            name: image.name.clone(),
            image: Some(image.image.clone()),
            target_container_name: target,
            stdin: Some(true),
            tty: Some(true),
            ..EphemeralContainer::default()
        });
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status
        .ephemeral_container_statuses
        .get_or_insert_with(Vec::new)
        .push(running_status(image, &container_id()));
}

/// The template kept on a pod.
pub fn template_of(pod: &Pod) -> Option<PodTemplate> {
    let text = pod
        .metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_ANNOTATION)?;
    serde_json::from_str(text).ok()
}

/// A service account with a fresh uid.
pub fn new_service_account(namespace: &str, name: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(new_uid()),
            creation_timestamp: Some(now()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_look_like_a_runtime_reports_them() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let image = |image: &str| ContainerImage {
            name: "c".into(),
            image: image.into(),
            digest: Some(digest.clone()),
            env: Default::default(),
        };
        assert_eq!(
            image("registry.example:5000/shop/api:1.4").image_id(),
            format!("registry.example:5000/shop/api@{digest}")
        );
        assert_eq!(image("busybox").image_id(), format!("busybox@{digest}"));
        let tag_only = ContainerImage {
            digest: None,
            ..image("busybox:1.36")
        };
        assert_eq!(tag_only.image_id(), "busybox:1.36");
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
    }
}
