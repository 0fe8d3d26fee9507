//! A Secret volume as the kubelet mounts one: what a `v1` Secret manifest
//! (YAML or JSON) mounts, one file per key under a directory named after
//! the Secret (`data` decoded, `stringData` as written, `stringData`
//! winning for a key in both, as the API server merges them).
//!
//! Parsing only: `podseal-dev cluster mount-secret` writes the files. Every
//! name is checked here, before anything is written: the Secret's name is an
//! RFC 1123 subdomain and every key a Secret data key (`[-._a-zA-Z0-9]+`,
//! not `.` nor `..`), so each is one path component, and a key such as
//! `../x` never reaches the file system.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use podseal_core::scope::SecretSlot;

/// What a Secret manifest mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVolume {
    /// The Secret's name: the directory its files go in.
    pub name: String,
    /// Each key (a file name in that directory) and the bytes it holds.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Why a manifest is not a Secret that can be mounted: the message says
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotASecret(String);

/// The Secret volume of `manifest`, a `v1` Secret in YAML or JSON.
pub fn parse_manifest(manifest: &str) -> Result<SecretVolume, NotASecret> {
    let value: serde_json::Value =
        serde_saphyr::from_str(manifest).map_err(|e| NotASecret(e.to_string()))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some("Secret")
        || value.get("apiVersion").and_then(|v| v.as_str()) != Some("v1")
    {
        return Err(NotASecret("its kind is not v1 Secret".into()));
    }
    let secret: Secret = serde_json::from_value(value).map_err(|e| NotASecret(e.to_string()))?;
    let name = secret
        .metadata
        .name
        .ok_or_else(|| NotASecret("it has no metadata.name".into()))?;
    // `stringData` wins over `data` for the same key, as the API server merges them.
    let mut files: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, value.0))
        .collect();
    files.extend(
        secret
            .string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.into_bytes())),
    );
    if files.is_empty() {
        return Err(NotASecret("it has no data".into()));
    }
    for key in files.keys() {
        SecretSlot::new(&name, key).map_err(|e| NotASecret(e.to_string()))?;
    }
    Ok(SecretVolume { name, files })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn data_is_decoded_and_string_data_wins() {
        let volume = parse_manifest(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: aHVudGVyMg==\n  user: YWxpY2U=\nstringData:\n  user: bob\n",
        )
        .unwrap();
        assert_eq!(volume.name, "db");
        assert_eq!(
            volume.files,
            BTreeMap::from([
                ("password".to_owned(), b"hunter2".to_vec()),
                ("user".to_owned(), b"bob".to_vec()),
            ])
        );
    }

    #[test]
    fn names_that_are_not_one_path_component_are_refused() {
        for (manifest, needle) in [
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  ../x: v\n",
                "Secret key `../x` is invalid",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  ..: v\n",
                "Secret key `..` is invalid",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ../db\nstringData:\n  x: v\n",
                "Secret name `../db` is invalid",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db\ndata:\n  x: v\n",
                "its kind is not v1 Secret",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n",
                "it has no data",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {}\nstringData:\n  x: v\n",
                "it has no metadata.name",
            ),
        ] {
            let error = parse_manifest(manifest).unwrap_err().to_string();
            assert!(error.contains(needle), "{manifest:?}: {error}");
        }
    }
}
