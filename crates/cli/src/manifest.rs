//! Kubernetes `Secret` manifests whose every data value is a capsule.
//!
//! Built from `k8s-openapi` types, never hand-written YAML, so the manifest
//! has exactly the shape the API server accepts. Labels and annotations say
//! what the Secret is (sealed by podseal, which org keys, which scope) so a
//! reviewer of a git diff or of `kubectl get secret -o yaml` sees that the
//! values are capsules, safe to store.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podseal_core::capsule::Capsule;

use podseal_command::CliError;

/// The Secret `type` of podseal manifests.
pub const SECRET_TYPE: &str = "podseal.dev/sealed";
/// Label that marks the manager.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "podseal");

/// The most a Secret's `data` may hold: kube-apiserver refuses a Secret
/// whose keys and values add up to more (`MaxSecretSize`, 1 MiB).
pub const MAX_SECRET_DATA_BYTES: usize = 1024 * 1024;

/// Refuses entries whose capsules would make a Secret the API server
/// refuses: keys and armored capsules (the values it stores) above
/// [`MAX_SECRET_DATA_BYTES`] in all. A capsule is about 4/3 of its
/// plaintext, so the plaintexts of one Secret can total about 750 KiB.
pub fn check_size(entries: &[(String, Capsule)]) -> Result<(), CliError> {
    let total: usize = entries
        .iter()
        .map(|(key, capsule)| key.len() + capsule.to_armored().len())
        .sum();
    if total > MAX_SECRET_DATA_BYTES {
        return Err(CliError::usage(format!(
            "the Secret's data would be {total} bytes, over the Kubernetes limit of {MAX_SECRET_DATA_BYTES} bytes (1 MiB) for one Secret: the API server would refuse it"
        ))
        .hint("split the values over several Secrets (one --k8s-secret each), or seal large files as separate capsules"));
    }
    Ok(())
}

/// Builds the `Secret` for `name` in `namespace` with one capsule per key.
pub fn sealed_secret(
    name: &str,
    namespace: &str,
    entries: &[(String, Capsule)],
) -> Result<Secret, CliError> {
    let first = entries.first().ok_or_else(|| {
        CliError::usage("a Secret manifest needs at least one --from-file KEY=PATH")
    })?;
    let scope = first.1.header().scope.as_kubernetes().ok_or_else(|| {
        CliError::usage("a Secret manifest holds capsules of a kubernetes scope only")
    })?;
    let mut kids: Vec<&str> = entries
        .iter()
        .flat_map(|(_, capsule)| {
            capsule
                .envelope
                .stanzas()
                .iter()
                .filter_map(|s| s.hpke_kid())
        })
        .map(|kid| kid.as_str())
        .collect();
    kids.sort_unstable();
    kids.dedup();

    let annotations = BTreeMap::from([
        ("podseal.dev/format".to_owned(), "v1".to_owned()),
        ("podseal.dev/kids".to_owned(), kids.join(",")),
        ("podseal.dev/cluster".to_owned(), scope.cluster.clone()),
        (
            "podseal.dev/service-accounts".to_owned(),
            scope.service_accounts.join(","),
        ),
    ]);
    let data = entries
        .iter()
        .map(|(key, capsule)| (key.clone(), ByteString(capsule.to_armored().into_bytes())))
        .collect();
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

/// The manifest as YAML.
pub fn to_yaml(secret: &Secret) -> Result<String, CliError> {
    serde_saphyr::to_string(secret)
        .map_err(|e| CliError::failure(format!("cannot write the manifest as YAML: {e}")))
}
