//! How a failed call to a cluster's API server is told: one line that
//! names the way out, never kube's `Debug` dump of a `Status` (its
//! `Display` of an API error carries one).

/// One line for `error`: the API server's code and message; a TLS failure
/// as one of trust in the pinned CA (named by its SHA-256 fingerprints,
/// `ca_sha256`, when known); else kube's sentence with the innermost cause
/// (where the connection failed).
pub fn describe(error: &kube::Error, ca_sha256: Option<&str>) -> String {
    if let kube::Error::Api(status) = error {
        return format!("the API server answered {} {}", status.code, status.message);
    }
    let mut causes = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = next {
        causes.push(cause.to_string());
        next = cause.source();
    }
    if let Some(tls) = causes.iter().find(|c| c.contains("certificate")) {
        let pinned = ca_sha256.map_or_else(
            || "the CA pinned at registration".to_owned(),
            |sha256| format!("the CA pinned at registration (sha256 {sha256})"),
        );
        return format!(
            "TLS: the API server's certificate is not trusted by {pinned} ({tls}); give the CA that signed it (cluster add --ca-bundle, with --replace for a registered cluster)"
        );
    }
    let outer = error.to_string();
    match causes.last() {
        Some(innermost) if causes.len() > 1 && !outer.contains(innermost.as_str()) => {
            format!("{outer}: {innermost}")
        }
        _ => outer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_its_code_and_message_not_a_debug_dump() {
        let status = kube::core::Status::failure("pods is forbidden", "Forbidden").with_code(403);
        let line = describe(&kube::Error::Api(Box::new(status)), None);
        assert_eq!(line, "the API server answered 403 pods is forbidden");
        assert!(!line.contains("Status {"), "{line}");
    }
}
