//! `podseal-dev cluster`: run the Kubernetes API stand-in as a process, and
//! drive it with control verbs over its admin API (with the same kube client
//! code the release server uses for any cluster).

use podseal_command::outln;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use podseal_dev_cluster::issuer::SigningAlgorithm;
use podseal_dev_cluster::secret_volume::{self, SecretVolume};
use podseal_dev_cluster::{
    Config, ContainerImage, DevCluster, ImageVolume, PodTemplate, connection_files,
};
use podseal_server::cluster::client::{
    ClusterRegistration, ReaderToken, kube_client, read_ca_bundle,
};
use serde::{Deserialize, Serialize};

use crate::cli::{DevClusterCommand, DevClusterDir, PodCommand, TokenAlg};
use podseal_command::CliError;
use podseal_command::output::{OutputFormat, counted, print_data};

/// What `cluster.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct ClusterFile {
    url: String,
    ca_bundle: PathBuf,
    reader_token_file: PathBuf,
    admin_token_file: PathBuf,
}

/// Where under `--dir` the stand-in keeps its CA, keys and objects.
const STATE_DIR: &str = "state";

/// Runs a `dev-cluster` subcommand.
pub fn run(command: DevClusterCommand, output: OutputFormat) -> Result<(), CliError> {
    podseal_command::runtime()?.block_on(async move {
        match command {
            DevClusterCommand::Serve {
                dir,
                listen,
                bookmark_interval,
                token_alg,
            } => serve(&dir.dir, listen, bookmark_interval, token_alg).await,
            DevClusterCommand::Pod(command) => pod(command, output).await,
            DevClusterCommand::Token {
                dir,
                namespace,
                service_account,
                pod,
                audiences,
                expiration_seconds,
                out,
            } => {
                let request = TokenArgs {
                    namespace: &namespace,
                    service_account: &service_account,
                    pod,
                    audiences,
                    expiration_seconds,
                };
                token(&dir, request, out.as_deref(), output).await
            }
            DevClusterCommand::MountSecret {
                manifest,
                secrets_dir,
            } => mount_secret(&manifest, &secrets_dir, output),
            DevClusterCommand::RotateSigningKey { dir, keep_old } => {
                let path = format!("/dev-cluster/v1/signing-key/rotate?keep_old={keep_old}");
                control::<serde_json::Value>(&dir, "POST", &path, None)
                    .await
                    .and_then(|v| print_value(&v, output))
            }
            DevClusterCommand::AddVerificationKey { dir } => {
                control::<serde_json::Value>(&dir, "POST", "/dev-cluster/v1/signing-key/add", None)
                    .await
                    .and_then(|v| print_value(&v, output))
            }
            DevClusterCommand::CompactHistory { dir } => {
                control::<serde_json::Value>(&dir, "POST", "/dev-cluster/v1/history/compact", None)
                    .await
                    .and_then(|v| print_value(&v, output))
            }
            DevClusterCommand::ResetState { dir } => {
                control::<serde_json::Value>(&dir, "POST", "/dev-cluster/v1/state/reset", None)
                    .await
                    .and_then(|v| print_value(&v, output))
            }
        }
    })
}

fn print_value(value: &serde_json::Value, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, value),
        OutputFormat::Text => {
            outln!("{value}")
        }
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), CliError> {
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()));
    written.map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))
}

async fn serve(
    dir: &Path,
    listen: std::net::SocketAddr,
    bookmark_interval: u64,
    token_alg: TokenAlg,
) -> Result<(), CliError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    let config = Config {
        listen,
        bookmark_interval: Duration::from_secs(bookmark_interval.max(1)),
        token_algorithm: match token_alg {
            TokenAlg::Rs256 => SigningAlgorithm::Rs256,
            TokenAlg::Es256 => SigningAlgorithm::Es256,
            TokenAlg::Es384 => SigningAlgorithm::Es384,
            TokenAlg::Es512 => SigningAlgorithm::Es512,
        },
        state_dir: Some(dir.join(STATE_DIR)),
        ..Config::default()
    };
    let cluster = DevCluster::start(config)
        .await
        .map_err(|e| CliError::failure(e.to_string()))?;
    let file = ClusterFile {
        url: cluster.url().to_owned(),
        ca_bundle: dir.join(connection_files::CA),
        reader_token_file: dir.join(connection_files::READER_TOKEN),
        admin_token_file: dir.join(connection_files::ADMIN_TOKEN),
    };
    write_file(&file.ca_bundle, cluster.ca_pem(), 0o644)?;
    write_file(&file.reader_token_file, cluster.reader_token(), 0o600)?;
    write_file(&file.admin_token_file, cluster.admin_token(), 0o600)?;
    write_file(
        &dir.join(connection_files::KUBECONFIG),
        &connection_files::kubeconfig(cluster.url()),
        0o600,
    )?;
    // cluster.json last: its presence means the others are complete.
    let json = serde_json::to_string_pretty(&file).map_err(|e| CliError::failure(e.to_string()))?;
    write_file(&dir.join(connection_files::CLUSTER), &json, 0o644)?;
    // A reader that stopped after the first line (a test, `| head -1`)
    // must not kill the stand-in: stdout errors are ignored here.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "dev-cluster serving {} (connection files in {})",
        cluster.url(),
        dir.display()
    )
    .and_then(|()| stdout.flush());
    let _ = writeln!(stdout, "  CA bundle:          {}", file.ca_bundle.display());
    let _ = writeln!(
        stdout,
        "  read-only token:    {} (get/list/watch pods only)",
        file.reader_token_file.display()
    );
    let _ = writeln!(
        stdout,
        "  admin token:        {}",
        file.admin_token_file.display()
    );
    let _ = writeln!(
        stdout,
        "  kubeconfig:         {} (admin; KUBECONFIG=… kubectl get pods -A)",
        dir.join(connection_files::KUBECONFIG).display()
    );
    let _ = writeln!(
        stdout,
        "  state:              {} (kept across restarts)",
        dir.join(STATE_DIR).display()
    );
    let _ = writeln!(stdout, "Stop with Ctrl-C.").and_then(|()| stdout.flush());
    drop(stdout);
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| CliError::failure(format!("cannot wait for Ctrl-C: {e}")))
}

fn read_cluster_file(dir: &Path) -> Result<ClusterFile, CliError> {
    let path = dir.join(connection_files::CLUSTER);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::usage(format!("cannot read {}: {e}", path.display()))
            .hint("start the stand-in first: podseal-dev cluster serve --dir DIR")
    })?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("{} is not a dev-cluster file: {e}", path.display())))
}

async fn admin_client(dir: &Path) -> Result<kube::Client, CliError> {
    let file = read_cluster_file(dir)?;
    let ca_pem = read_ca_bundle(&file.ca_bundle).map_err(|e| CliError::failure(e.to_string()))?;
    let registration = ClusterRegistration {
        name: "dev-cluster".into(),
        api_server_url: file.url,
        ca_pem,
        token: ReaderToken::new(
            &std::fs::read_to_string(&file.admin_token_file).map_err(|e| {
                CliError::usage(format!(
                    "cannot read {}: {e}",
                    file.admin_token_file.display()
                ))
            })?,
        ),
    };
    kube_client(&registration).map_err(|e| CliError::failure(e.to_string()))
}

async fn control<T: serde::de::DeserializeOwned>(
    dir: &DevClusterDir,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<T, CliError> {
    let client = admin_client(&dir.dir).await?;
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap_or_default())
        .unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| CliError::usage(format!("bad request: {e}")))?;
    let text = client.request_text(request).await.map_err(|e| match e {
        kube::Error::Api(status) => {
            CliError::failure(format!("dev-cluster refused: {}", status.message))
        }
        other => CliError::failure(format!("cannot reach the dev-cluster: {other}"))
            .hint("is `podseal-dev cluster serve` running with this --dir?"),
    })?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::failure(format!("unexpected answer from the dev-cluster: {e}")))
}

fn parse_container(spec: &str) -> Result<ContainerImage, CliError> {
    let (name, image) = spec.split_once('=').ok_or_else(|| {
        CliError::usage(format!(
            "container `{spec}` must be NAME=IMAGE[@sha256:DIGEST]"
        ))
    })?;
    Ok(image_ref(name, image))
}

fn image_ref(name: &str, image: &str) -> ContainerImage {
    match image.split_once('@') {
        Some((image, digest)) => ContainerImage {
            name: name.into(),
            image: image.into(),
            digest: Some(digest.into()),
            env: Default::default(),
        },
        None => ContainerImage {
            name: name.into(),
            image: image.into(),
            digest: None,
            env: Default::default(),
        },
    }
}

/// `--image-volume NAME=REFERENCE`, each with its `--image-volume-digest
/// NAME=sha256:DIGEST` if one names it.
fn parse_image_volumes(
    volumes: &[String],
    digests: &[String],
) -> Result<Vec<ImageVolume>, CliError> {
    let mut parsed = volumes
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((name, reference)) if !name.is_empty() && !reference.is_empty() => {
                Ok(ImageVolume {
                    name: name.into(),
                    reference: reference.into(),
                    mounted_digest: None,
                })
            }
            _ => Err(CliError::usage(format!(
                "--image-volume `{spec}` must be NAME=REFERENCE"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    for spec in digests {
        let (name, digest) = spec
            .split_once('=')
            .filter(|(_, digest)| podseal_server::pod_view::digest_of_image_id(digest).is_some())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--image-volume-digest `{spec}` must be NAME=sha256:<64 hex>"
                ))
            })?;
        let volume = parsed.iter_mut().find(|v| v.name == name).ok_or_else(|| {
            CliError::usage(format!(
                "--image-volume-digest names volume {name}, which no --image-volume declares"
            ))
        })?;
        volume.mounted_digest = Some(digest.into());
    }
    Ok(parsed)
}

/// Applies one `--env CONTAINER:NAME=VALUE` to the template's container.
fn set_env(template: &mut PodTemplate, spec: &str) -> Result<(), CliError> {
    let parsed = spec
        .split_once(':')
        .and_then(|(container, var)| var.split_once('=').map(|(k, v)| (container, k, v)))
        .filter(|(container, name, _)| !container.is_empty() && !name.is_empty());
    let Some((container, name, value)) = parsed else {
        return Err(CliError::usage(format!(
            "--env `{spec}` must be CONTAINER:NAME=VALUE"
        )));
    };
    let target = template
        .init_containers
        .iter_mut()
        .chain(template.sidecars.iter_mut())
        .chain(template.containers.iter_mut())
        .find(|c| c.name == container)
        .ok_or_else(|| {
            CliError::usage(format!(
                "--env `{spec}` names container {container}, which no --container or --init-container declares"
            ))
        })?;
    target.env.insert(name.to_owned(), value.to_owned());
    Ok(())
}

fn split_pod(pod: &str) -> Result<(&str, &str), CliError> {
    pod.split_once('/')
        .ok_or_else(|| CliError::usage(format!("pod `{pod}` must be NAMESPACE/NAME")))
}

/// How a container stands, in the words `kubectl describe pod` uses.
fn container_state(status: &ContainerStatus) -> String {
    let Some(state) = &status.state else {
        return "no state".into();
    };
    if state.running.is_some() {
        "running".into()
    } else if let Some(waiting) = &state.waiting {
        format!(
            "waiting ({})",
            waiting.reason.as_deref().unwrap_or("no reason")
        )
    } else if let Some(terminated) = &state.terminated {
        format!(
            "terminated ({}, exit code {})",
            terminated.reason.as_deref().unwrap_or("no reason"),
            terminated.exit_code
        )
    } else {
        "no state".into()
    }
}

/// Each container of `pod`, spec then status: its kind, name, image, and
/// (once the kubelet reports it) the digest it runs, its state and restarts.
fn container_lines(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut lines = Vec::new();
    let mut add =
        |kind: &str, name: &str, image: Option<&str>, statuses: Option<&Vec<ContainerStatus>>| {
            let image = image.unwrap_or("-");
            lines.push(
                match statuses.and_then(|all| all.iter().find(|s| s.name == name)) {
                    Some(s) => format!(
                        "  {kind} {name}: {image}; {}, {}, image id {}",
                        container_state(s),
                        counted(
                            u64::try_from(s.restart_count).unwrap_or_default(),
                            "restart",
                            "restarts"
                        ),
                        if s.image_id.is_empty() {
                            "-"
                        } else {
                            s.image_id.as_str()
                        },
                    ),
                    None => format!("  {kind} {name}: {image}; not started"),
                },
            );
        };
    if let Some(spec) = spec {
        for c in spec.init_containers.iter().flatten() {
            let kind = if c.restart_policy.as_deref() == Some("Always") {
                "sidecar"
            } else {
                "init"
            };
            add(
                kind,
                &c.name,
                c.image.as_deref(),
                status.and_then(|s| s.init_container_statuses.as_ref()),
            );
        }
        for c in &spec.containers {
            add(
                "container",
                &c.name,
                c.image.as_deref(),
                status.and_then(|s| s.container_statuses.as_ref()),
            );
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            add(
                "ephemeral",
                &c.name,
                c.image.as_deref(),
                status.and_then(|s| s.ephemeral_container_statuses.as_ref()),
            );
        }
    }
    lines
}

/// A pod for people: a line that says what changed (`what`), its identity
/// and phase, then each container.
fn print_pod(pod: &Pod, what: &str, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, pod),
        OutputFormat::Text => {
            let facts = podseal_server::pod_view::pod_facts(pod);
            outln!("{what}")?;
            outln!(
                "pod {}/{} uid {} phase {}",
                facts.namespace,
                facts.name,
                facts.uid,
                facts.phase.as_deref().unwrap_or("-")
            )?;
            for line in container_lines(pod) {
                outln!("{line}")?;
            }
            Ok(())
        }
    }
}

/// READY, STATUS and RESTARTS as `kubectl get pods` shows them.
fn pod_row(pod: &Pod) -> [String; 6] {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let declared = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let ready = statuses.iter().filter(|s| s.ready).count();
    let restarts: i32 = statuses.iter().map(|s| s.restart_count).sum();
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "-".into());
    let containers = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    [
        namespace,
        name,
        format!("{ready}/{declared}"),
        phase,
        restarts.to_string(),
        containers,
    ]
}

/// `pod list`: the pods the stand-in holds, through the Kubernetes list
/// API (what `kubectl get pods` reads).
async fn list_pods(
    dir: &DevClusterDir,
    namespace: Option<&str>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let client = admin_client(&dir.dir).await?;
    let api: kube::Api<Pod> = match namespace {
        Some(namespace) => kube::Api::namespaced(client, namespace),
        None => kube::Api::all(client),
    };
    let pods = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| {
            CliError::failure(format!("cannot list pods: {e}"))
                .hint("is `podseal-dev cluster serve` running with this --dir?")
        })?;
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &pods.items),
        OutputFormat::Text => {
            let mut rows = vec![
                [
                    "NAMESPACE",
                    "NAME",
                    "READY",
                    "STATUS",
                    "RESTARTS",
                    "CONTAINERS",
                ]
                .map(String::from),
            ];
            rows.extend(pods.items.iter().map(pod_row));
            let mut widths = [0; 6];
            for row in &rows {
                for (width, cell) in widths.iter_mut().zip(row) {
                    *width = (*width).max(cell.len());
                }
            }
            for row in &rows {
                let mut line = String::new();
                for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
                    if i + 1 == row.len() {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<width$}   "));
                    }
                }
                outln!("{line}")?;
            }
            Ok(())
        }
    }
}

/// What the stand-in answers to a certificate request.
#[derive(Deserialize)]
struct CertificateRequestAnswer {
    request: serde_json::Value,
    private_key_pem: String,
}

/// `pod certificate-request`: the key is written first (a new file), then
/// the request is printed; a key that cannot be written leaves the
/// request pending with no one holding its key, as a kubelet that failed.
async fn certificate_request(
    dir: &DevClusterDir,
    pod: &str,
    body: serde_json::Value,
    key_out: &Path,
    output: OutputFormat,
) -> Result<(), CliError> {
    let (ns, name) = split_pod(pod)?;
    if key_out.exists() {
        return Err(CliError::usage(format!(
            "{} exists; the key is written only to a new file",
            key_out.display()
        )));
    }
    let answer: CertificateRequestAnswer = control(
        dir,
        "POST",
        &format!("/dev-cluster/v1/pods/{ns}/{name}/certificate-request"),
        Some(body),
    )
    .await?;
    podseal_command::output::write_new_file(key_out, answer.private_key_pem.as_bytes(), 0o600)?;
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &answer.request),
        OutputFormat::Text => {
            let request = answer
                .request
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            outln!(
                "podcertificaterequest {ns}/{request} created for pod {ns}/{name}; its key is in {}",
                key_out.display()
            )
        }
    }
}

async fn pod(command: PodCommand, output: OutputFormat) -> Result<(), CliError> {
    let (pod, what): (Pod, String) = match command {
        PodCommand::CertificateRequest {
            dir,
            pod,
            signer,
            max_expiration_seconds,
            key_out,
        } => {
            let body = serde_json::json!({
                "signer_name": signer,
                "max_expiration_seconds": max_expiration_seconds,
            });
            return certificate_request(&dir, &pod, body, &key_out, output).await;
        }
        PodCommand::List { dir, namespace } => {
            return list_pods(&dir, namespace.as_deref(), output).await;
        }
        PodCommand::Create {
            dir,
            namespace,
            name,
            service_account,
            containers,
            init_containers,
            sidecars,
            image_volumes,
            image_volume_digests,
            node,
            labels,
            env,
            running,
        } => {
            let mut template = PodTemplate {
                sidecars: sidecars
                    .iter()
                    .map(|c| parse_container(c))
                    .collect::<Result<_, _>>()?,
                image_volumes: parse_image_volumes(&image_volumes, &image_volume_digests)?,
                node,
                labels: labels
                    .iter()
                    .map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect::<Option<_>>()
                    .ok_or_else(|| CliError::usage("labels must be KEY=VALUE"))?,
                containers: containers
                    .iter()
                    .map(|c| parse_container(c))
                    .collect::<Result<_, _>>()?,
                init_containers: init_containers
                    .iter()
                    .map(|c| parse_container(c))
                    .collect::<Result<_, _>>()?,
                namespace,
                name,
                service_account,
            };
            for spec in &env {
                set_env(&mut template, spec)?;
            }
            let body =
                serde_json::to_value(&template).map_err(|e| CliError::failure(e.to_string()))?;
            let pod: Pod = control(&dir, "POST", "/dev-cluster/v1/pods", Some(body)).await?;
            let created = format!("created pod {}/{}", template.namespace, template.name);
            if running {
                let pod = control(
                    &dir,
                    "POST",
                    &format!(
                        "/dev-cluster/v1/pods/{}/{}/running",
                        template.namespace, template.name
                    ),
                    None,
                )
                .await?;
                (pod, format!("{created}; every container started"))
            } else {
                let hint = format!(
                    "{created}; Pending until `podseal-dev cluster pod running {}/{}`",
                    template.namespace, template.name
                );
                (pod, hint)
            }
        }
        PodCommand::Running { dir, pod } => {
            let (ns, name) = split_pod(&pod)?;
            let pod = control(
                &dir,
                "POST",
                &format!("/dev-cluster/v1/pods/{ns}/{name}/running"),
                None,
            )
            .await?;
            (pod, format!("pod {ns}/{name}: every container started"))
        }
        PodCommand::Restart {
            dir,
            pod,
            container,
            stop,
            start,
        } => {
            let (ns, name) = split_pod(&pod)?;
            let verb = match (stop, start) {
                (true, _) => "stop",
                (_, true) => "start",
                _ => "restart",
            };
            let pod = control(
                &dir,
                "POST",
                &format!("/dev-cluster/v1/pods/{ns}/{name}/containers/{container}/{verb}"),
                None,
            )
            .await?;
            let done = match verb {
                "stop" => "stopped (its process exited; the kubelet waits in back-off)",
                "start" => "started again (a new instance: a new containerID)",
                _ => "restarted (a new instance: a new containerID, restart count + 1)",
            };
            (
                pod,
                format!("pod {ns}/{name}: container {container} {done}"),
            )
        }
        PodCommand::Delete { dir, pod } => {
            let (ns, name) = split_pod(&pod)?;
            let pod = control(
                &dir,
                "DELETE",
                &format!("/dev-cluster/v1/pods/{ns}/{name}"),
                None,
            )
            .await?;
            (pod, format!("deleted pod {ns}/{name}"))
        }
        PodCommand::Recreate { dir, pod } => {
            let (ns, name) = split_pod(&pod)?;
            let pod = control(
                &dir,
                "POST",
                &format!("/dev-cluster/v1/pods/{ns}/{name}/recreate"),
                None,
            )
            .await?;
            let what = format!(
                "recreated pod {ns}/{name} with a new uid; Pending until `podseal-dev cluster pod running {ns}/{name}`"
            );
            (pod, what)
        }
        PodCommand::Debug {
            dir,
            pod,
            image,
            name,
        } => {
            let (ns, pod_name) = split_pod(&pod)?;
            let body = serde_json::to_value(image_ref(&name, &image))
                .map_err(|e| CliError::failure(e.to_string()))?;
            let pod = control(
                &dir,
                "POST",
                &format!("/dev-cluster/v1/pods/{ns}/{pod_name}/ephemeral"),
                Some(body),
            )
            .await?;
            let what = format!(
                "pod {ns}/{pod_name}: ephemeral container {name} ({image}) added and running, as `kubectl debug` adds one"
            );
            (pod, what)
        }
    };
    print_pod(&pod, &what, output)
}

/// What `cluster token` asks the TokenRequest API for.
struct TokenArgs<'a> {
    namespace: &'a str,
    service_account: &'a str,
    pod: Option<String>,
    audiences: Vec<String>,
    expiration_seconds: i64,
}

async fn token(
    dir: &DevClusterDir,
    args: TokenArgs<'_>,
    out: Option<&Path>,
    output: OutputFormat,
) -> Result<(), CliError> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(args.audiences),
            expiration_seconds: Some(args.expiration_seconds),
            bound_object_ref: args.pod.map(|name| BoundObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: Some(name),
                uid: None,
            }),
        }),
        ..TokenRequest::default()
    };
    let body = serde_json::to_value(&request).map_err(|e| CliError::failure(e.to_string()))?;
    let path = format!(
        "/api/v1/namespaces/{}/serviceaccounts/{}/token",
        args.namespace, args.service_account
    );
    let response: TokenRequest = control(dir, "POST", &path, Some(body)).await?;
    let status = response
        .status
        .filter(|status| status.token.is_some())
        .ok_or_else(|| CliError::failure("the TokenRequest answer has no token"))?;
    let token = status.token.unwrap_or_default();
    if let Some(out) = out {
        replace_file(out, token.as_bytes(), 0o600)?;
        let written = serde_json::json!({
            "tokenFile": out.display().to_string(),
            "expirationTimestamp": status.expiration_timestamp,
        });
        return match output {
            OutputFormat::Json | OutputFormat::Yaml => print_data(output, &written),
            OutputFormat::Text => {
                eprintln!("token written to {}", out.display());
                Ok(())
            }
        };
    }
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(
            output,
            &serde_json::json!({ "token": token, "expirationTimestamp": status.expiration_timestamp }),
        ),
        OutputFormat::Text => {
            outln!("{token}")
        }
    }
}

/// Replaces `path` whole with `contents` (a new file beside it, renamed over
/// it), as the kubelet updates projected tokens and Secret volumes: a reader
/// sees the old file or the new one, never half of one.
fn replace_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CliError> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::usage(format!("{} is not a file name", path.display())))?;
    let mut staged_name = std::ffi::OsString::from(".");
    staged_name.push(name);
    staged_name.push(format!(".{}.tmp", std::process::id()));
    let staged = path.with_file_name(staged_name);
    let _ = std::fs::remove_file(&staged);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staged)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&staged, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        CliError::failure(format!("cannot write {}: {e}", path.display()))
    })
}

/// The largest manifest `mount-secret` reads: a Secret holds at most 1 MiB.
const MAX_MANIFEST_LEN: u64 = 4 << 20;

/// `cluster mount-secret`: a Secret manifest's keys as files, as the kubelet
/// mounts a Secret volume (`data` decoded, `stringData` as written).
fn mount_secret(manifest: &Path, secrets_dir: &Path, output: OutputFormat) -> Result<(), CliError> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(manifest)
        .and_then(|file| file.take(MAX_MANIFEST_LEN + 1).read_to_string(&mut text))
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", manifest.display())))?;
    if text.len() as u64 > MAX_MANIFEST_LEN {
        return Err(CliError::usage(format!(
            "{} is over {MAX_MANIFEST_LEN} bytes: not one Secret",
            manifest.display()
        )));
    }
    // Every name is checked before anything is written: a key such as
    // `../x` never reaches the file system.
    let SecretVolume { name, files } = secret_volume::parse_manifest(&text).map_err(|e| {
        CliError::usage(format!(
            "{} is not a Secret manifest: {e}",
            manifest.display()
        ))
        .hint("give a manifest `podseal seal --k8s-secret NAME … --out FILE` wrote")
    })?;
    let volume = secrets_dir.join(&name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&volume)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", volume.display())))?;
    for (key, contents) in &files {
        replace_file(&volume.join(key), contents, 0o644)?;
    }
    let mounted = MountedSecret {
        secret: &name,
        dir: volume.display().to_string(),
        keys: files.keys().map(String::as_str).collect(),
    };
    match output {
        OutputFormat::Json | OutputFormat::Yaml => print_data(output, &mounted),
        OutputFormat::Text => {
            outln!(
                "secret/{} mounted at {}: {}",
                mounted.secret,
                mounted.dir,
                mounted.keys.join(", ")
            )
        }
    }
}

/// What `cluster mount-secret` mounted.
#[derive(Serialize)]
struct MountedSecret<'a> {
    secret: &'a str,
    dir: String,
    keys: Vec<&'a str>,
}
