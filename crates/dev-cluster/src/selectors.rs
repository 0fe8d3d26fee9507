//! Label and field selectors, the subset `kube`, `kubectl` and client-go
//! send: `key=value`, `key==value`, `key!=value`, `key`, `!key`,
//! `key in (a,b)`, `key notin (a,b)` for labels, and `=`, `==`, `!=` on
//! the fields each kind supports ([`crate::kinds::Kind::field_labels`]).

use serde_json::Value;

use crate::api_error::ApiError;
use crate::fields::at;
use crate::kinds::Kind;

enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector; all requirements must hold.
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
    field: bool,
}

/// Splits at commas outside parentheses.
fn parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set(key: &str, rest: &str, part: &str) -> Result<(String, Vec<String>), ApiError> {
    let values = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {part}")))?;
    Ok((
        key.trim().to_owned(),
        values.split(',').map(|v| v.trim().to_owned()).collect(),
    ))
}

impl Selector {
    /// Parses a label selector.
    pub fn labels(text: Option<&str>) -> Result<Self, ApiError> {
        Self::parse(text, false)
    }

    /// Parses a field selector for `kind`.
    pub fn fields(kind: &Kind, text: Option<&str>) -> Result<Self, ApiError> {
        let selector = Self::parse(text, true)?;
        for requirement in &selector.requirements {
            let key = match requirement {
                Requirement::Equals(k, _) | Requirement::NotEquals(k, _) => k,
                Requirement::Exists(k)
                | Requirement::NotExists(k)
                | Requirement::In(k, _)
                | Requirement::NotIn(k, _) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: `{k}` needs = or !="
                    )));
                }
            };
            if !kind.selects_field(key) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
        }
        Ok(selector)
    }

    fn parse(text: Option<&str>, field: bool) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in parts(text.unwrap_or_default()) {
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                let (k, values) = set(k, rest, part)?;
                Requirement::NotIn(k, values)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                let (k, values) = set(k, rest, part)?;
                Requirement::In(k, values)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if part.contains(' ') || part.contains('(') {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {part}"
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

    /// True when `object` satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let value = |key: &str| -> Option<String> {
            if self.field {
                field_value(object, key)
            } else {
                at(object, &["metadata", "labels", key])
                    .as_str()
                    .map(str::to_owned)
            }
        };
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => value(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => value(k).as_deref() != Some(v.as_str()),
            Requirement::In(k, vs) => value(k).is_some_and(|v| vs.contains(&v)),
            Requirement::NotIn(k, vs) => value(k).is_none_or(|v| !vs.contains(&v)),
            Requirement::Exists(k) => value(k).is_some(),
            Requirement::NotExists(k) => value(k).is_none(),
        })
    }
}

/// A field's value as text: strings as they are, numbers and booleans as
/// written, absent as empty (so `spec.nodeName=` selects unscheduled pods).
fn field_value(object: &Value, path: &str) -> Option<String> {
    let value = path
        .split('.')
        .fold(object, |value, key| value.get(key).unwrap_or(&Value::Null));
    Some(match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_based_label_selectors_select_as_kubernetes_does() {
        let pod = serde_json::json!({"metadata": {"labels": {"app": "shop", "tier": "api"}}});
        let matches = |text: &str| Selector::labels(Some(text)).unwrap().matches(&pod);
        assert!(matches("app in (shop, bank),tier"));
        assert!(!matches("app notin (shop)"));
        assert!(matches("env notin (prod),!env"));
        assert!(!matches("app=shop,tier!=api"));
        assert!(Selector::labels(Some("app in shop")).is_err());
    }
}
