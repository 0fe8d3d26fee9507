//! Label and field selectors, the subset `kube` and `kubectl` send:
//! `key=value`, `key==value`, `key!=value`, `key`, `!key` for labels, and
//! `metadata.name`, `metadata.namespace`, `status.phase`, `spec.nodeName`,
//! `spec.serviceAccountName` with `=`, `==`, `!=` for fields.

use k8s_openapi::api::core::v1::Pod;

use crate::api_error::ApiError;

enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// A parsed selector; all requirements must hold.
pub struct Selector {
    requirements: Vec<Requirement>,
    field: bool,
}

impl Selector {
    /// Parses a label selector.
    pub fn labels(text: Option<&str>) -> Result<Self, ApiError> {
        Self::parse(text, false)
    }

    /// Parses a field selector (only the supported fields).
    pub fn fields(text: Option<&str>) -> Result<Self, ApiError> {
        let selector = Self::parse(text, true)?;
        for requirement in &selector.requirements {
            let key = match requirement {
                Requirement::Equals(k, _) | Requirement::NotEquals(k, _) => k,
                Requirement::Exists(k) | Requirement::NotExists(k) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: `{k}` needs a value"
                    )));
                }
            };
            if field_value(&Pod::default(), key).is_none() {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
        }
        Ok(selector)
    }

    fn parse(text: Option<&str>, field: bool) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in text
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if part.contains(' ') || part.contains('(') {
                return Err(ApiError::bad_request(format!(
                    "unsupported selector: {part}"
                )));
            } else {
                Requirement::Exists(part.into())
            };
            requirements.push(requirement);
        }
        Ok(Self {
            requirements,
            field,
        })
    }

    /// True when `pod` satisfies every requirement.
    pub fn matches(&self, pod: &Pod) -> bool {
        let value = |key: &str| -> Option<String> {
            if self.field {
                field_value(pod, key).flatten()
            } else {
                pod.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(key).cloned())
            }
        };
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => value(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => value(k).as_deref() != Some(v.as_str()),
            Requirement::Exists(k) => value(k).is_some(),
            Requirement::NotExists(k) => value(k).is_none(),
        })
    }
}

/// `Some(value)` for a supported field (the value may be absent), `None` for
/// an unsupported one.
fn field_value(pod: &Pod, key: &str) -> Option<Option<String>> {
    let spec = pod.spec.as_ref();
    Some(match key {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace.clone(),
        "status.phase" => pod.status.as_ref().and_then(|s| s.phase.clone()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        _ => return None,
    })
}
