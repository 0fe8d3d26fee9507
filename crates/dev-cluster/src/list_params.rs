//! The query parameters of list and watch, as kube-apiserver reads them.

use serde::Deserialize;

/// Query parameters of list and watch.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListParams {
    pub(crate) watch: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) label_selector: Option<String>,
    pub(crate) field_selector: Option<String>,
    pub(crate) allow_watch_bookmarks: Option<String>,
    pub(crate) timeout_seconds: Option<u64>,
    pub(crate) send_initial_events: Option<String>,
    pub(crate) resource_version_match: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) include_object: Option<String>,
    #[serde(rename = "continue")]
    pub(crate) continue_token: Option<String>,
}

pub(crate) fn flag(value: Option<&String>) -> bool {
    value.is_some_and(|v| v == "true" || v == "1")
}
