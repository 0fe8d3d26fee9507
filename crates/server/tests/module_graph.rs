//! Issue 23 §3: no module of the server imports, directly or through
//! others, a module that imports it back. Read from the source: every
//! `crate::a::b` path (in `use` lines and in code, comments and the
//! `#[cfg(test)]` tail left out) is an edge from the file to the deepest
//! module file it names, and `super::x` one to its sibling; a module's
//! parent declaring it (`mod x;`) is no edge. A cycle fails the test,
//! naming its modules.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `module path (a/b) -> source without comments and tests`.
fn modules(dir: &Path, prefix: &str, into: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            modules(&path, &format!("{prefix}{name}/"), into);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let module = match stem {
                "mod" | "lib" => prefix.trim_end_matches('/').to_owned(),
                _ => format!("{prefix}{stem}"),
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let code: Vec<&str> = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            into.insert(module, code.join("\n"));
        }
    }
}

/// The module files `code` (of `module`) refers to.
fn references(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut resolve = |parts: Vec<&str>| {
        for k in (1..=parts.len()).rev() {
            let candidate = parts[..k].join("/");
            if known.contains(&candidate) {
                out.insert(candidate);
                return;
            }
        }
    };
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '{' || c == ',')
        })
        .map(str::to_owned)
        .collect()
    };
    for token in words(code) {
        if let Some(rest) = token.strip_prefix("crate::") {
            // `crate::a::{b, c::d}`: each path in the group.
            let (head, group) = rest.split_once("::{").unwrap_or((rest, ""));
            let head: Vec<&str> = head
                .split("::")
                .filter(|p| !p.is_empty() && !p.starts_with('{'))
                .collect();
            if group.is_empty() {
                resolve(head);
            } else {
                for item in group.split(',') {
                    let mut parts = head.clone();
                    parts.extend(item.split("::").filter(|p| !p.is_empty()));
                    resolve(parts);
                }
            }
        } else if let Some(rest) = token.strip_prefix("super::") {
            let parent = module.rsplit_once('/').map_or("", |(p, _)| p);
            let mut parts: Vec<&str> = parent.split('/').filter(|p| !p.is_empty()).collect();
            parts.extend(
                rest.split("::")
                    .filter(|p| !p.is_empty() && !p.starts_with('{')),
            );
            resolve(parts);
        }
    }
    out.remove(module);
    out
}

#[test]
fn no_module_of_the_server_imports_one_that_imports_it_back() {
    let mut sources = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut sources,
    );
    let known: BTreeSet<String> = sources.keys().cloned().collect();
    assert!(known.len() > 20, "read too few modules: {known:?}");
    let edges: BTreeMap<&str, BTreeSet<String>> = sources
        .iter()
        .map(|(m, code)| (m.as_str(), references(m, code, &known)))
        .collect();
    // The edges this reads must include ones known to exist, or the
    // parser has gone blind and the test proves nothing.
    assert!(edges["release"].contains("gate/live_pod"), "{edges:?}");
    assert!(edges["startup"].contains("api"), "{edges:?}");
    // A module reaches itself through others: a cycle.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = edges[start]
            .iter()
            .map(|m| (m.clone(), vec![(*start).to_owned(), m.clone()]))
            .collect();
        while let Some((module, path)) = stack.pop() {
            assert!(
                module != *start,
                "a circle among the server's modules: {}",
                path.join(" → ")
            );
            if seen.insert(module.clone()) {
                for next in edges.get(module.as_str()).into_iter().flatten() {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
}
