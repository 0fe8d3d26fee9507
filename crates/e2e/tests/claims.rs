//! The security documents name the tests behind each claim: the README's
//! claims table, `SECURITY.md`'s tables and `docs/threat-model.md`. Every
//! name must be a test that exists, so that renaming or deleting a test
//! that proves a claim fails here, and no document can drift from the
//! suite.
//!
//! Two forms are read. `docs/threat-model.md` names a test by its file,
//! `crates/…/x.rs::test`, and a case of a table-driven test as
//! `crates/…/x.rs::test[case]` (the case's name must be in the file). The
//! tables' `test` column names one by module path, `module::test` (the
//! path's last modules must be the file's, `tests` modules left out), and
//! may end in a pattern with `*` (`storage::*_a_jti_is_accepted_once`,
//! `audit::tests::*`) that must match at least one test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A test function of the workspace: its file (from the root), its module
/// path, and its name.
#[derive(Debug)]
struct Test {
    file: String,
    modules: Vec<String>,
    name: String,
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The names of the functions `source` marks as tests (by an attribute on
/// one of the few lines above them).
fn test_names(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut names = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        let marked = lines[i.saturating_sub(6)..i]
            .iter()
            .any(|l| l.trim_start().starts_with("#[test]") || l.contains("#[tokio::test"));
        if !marked {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// The module path of a file: `crates/core/src/hpke/kem.rs` is
/// `hpke::kem`, `crates/server/tests/storage/main.rs` is `storage`.
fn module_path(relative: &Path) -> Vec<String> {
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    // crates/<crate>/(src|tests)/…
    let mut modules: Vec<String> = parts.iter().skip(3).cloned().collect();
    if let Some(last) = modules.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "main" | "lib" | "mod") {
            modules.push(stem.to_owned());
        }
    }
    modules
}

fn workspace_tests() -> Vec<Test> {
    let root = root();
    let mut tests = Vec::new();
    for file in sources(&root.join("crates")) {
        let source = std::fs::read_to_string(&file).unwrap();
        let relative = file.strip_prefix(&root).unwrap().to_owned();
        for name in test_names(&source) {
            tests.push(Test {
                file: relative.to_string_lossy().into_owned(),
                modules: module_path(&relative),
                name,
            });
        }
    }
    tests
}

/// `pattern` (with `*` for any run of characters) matches all of `name`.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Why `reference` names no test, or `None` when it does.
fn check(reference: &str, tests: &[Test]) -> Option<String> {
    if reference.starts_with("crates/") {
        // A reference that does not parse is not found: it fails, never passes.
        let Some((file, rest)) = reference.split_once(".rs::") else {
            return Some("not `crates/…/file.rs::test`".to_owned());
        };
        let file = format!("{file}.rs");
        let (name, case) = match rest.split_once('[') {
            Some((name, case)) => match case.strip_suffix(']') {
                Some(case) => (name, Some(case)),
                None => return Some("a case without its closing `]`".to_owned()),
            },
            None => (rest, None),
        };
        if !tests.iter().any(|t| t.file == file && t.name == name) {
            return Some(format!("no test {name} in {file}"));
        }
        if let Some(case) = case {
            let source = std::fs::read_to_string(root().join(&file)).unwrap();
            if !source.contains(&format!("\"{case}\"")) {
                return Some(format!("no case {case} in {file}"));
            }
        }
        return None;
    }
    let mut segments: Vec<&str> = reference.split("::").filter(|s| *s != "tests").collect();
    let Some(pattern) = segments.pop() else {
        return Some("not `module::test`".to_owned());
    };
    let found = tests.iter().any(|t| {
        t.modules.len() >= segments.len()
            && t.modules[t.modules.len() - segments.len()..]
                .iter()
                .zip(&segments)
                .all(|(a, b)| a == b)
            && glob(pattern, &t.name)
    });
    (!found).then(|| "no such test".to_owned())
}

/// Every backticked span of `text` that names a test: in the threat
/// model, every `crates/…::…` span; in a table whose last column is
/// `test`, every `a::b` span of that column.
fn references(text: &str) -> Vec<String> {
    let spans = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| s.contains("::") && !s.contains(' '))
            .map(str::to_owned)
            .collect()
    };
    let mut out: Vec<String> = spans(text)
        .into_iter()
        .filter(|s| s.starts_with("crates/"))
        .collect();
    let mut in_test_table = false;
    for line in text.lines() {
        if !line.starts_with('|') {
            in_test_table = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_end_matches('|').split(" | ").collect();
        let last = cells.last().unwrap().trim().trim_start_matches('|').trim();
        if last == "test" {
            in_test_table = true;
            continue;
        }
        if in_test_table {
            out.extend(
                spans(last)
                    .into_iter()
                    .filter(|s| !s.starts_with("crates/")),
            );
        }
    }
    out
}

#[test]
fn every_test_a_security_document_names_exists() {
    let tests = workspace_tests();
    assert!(tests.len() > 300, "only {} tests found", tests.len());
    let mut missing = Vec::new();
    for (document, least) in [
        ("README.md", 140),
        ("SECURITY.md", 110),
        ("docs/threat-model.md", 90),
    ] {
        let text = std::fs::read_to_string(root().join(document)).unwrap();
        let references = references(&text);
        assert!(
            references.len() >= least,
            "only {} test references read in {document}",
            references.len()
        );
        for reference in references {
            if let Some(why) = check(&reference, &tests) {
                missing.push(format!("{document}: `{reference}`: {why}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests named by the security documents that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Each attacker's section of the threat model names tests, or says that
/// nothing is built yet for it.
#[test]
fn every_attacker_has_tested_guarantees_or_says_why_not() {
    let text = std::fs::read_to_string(root().join("docs/threat-model.md")).unwrap();
    let attackers = text
        .split("\n## ")
        .find(|s| s.starts_with("Attackers"))
        .unwrap();
    let sections: Vec<&str> = attackers.split("\n### ").skip(1).collect();
    assert!(sections.len() >= 11, "{} attacker sections", sections.len());
    for section in sections {
        let title = section.lines().next().unwrap();
        assert!(
            !references(section).is_empty() || section.contains("Not built yet"),
            "the section on {title} names no test"
        );
    }
}

/// The reader itself, on made-up text and tests.
#[test]
fn references_are_read_and_resolved_as_the_documents_write_them() {
    let text = "see `crates/a/tests/b.rs::c_d` and `crates/a/tests/b.rs::e[x/y]`, not `cargo test`\n\
                \n| claim | test |\n|---|---|\n| x, `not::this` | `b::c_d`, `m::tests::*` (`plain`) |\n\
                \nafter the table `not::this::either`\n";
    assert_eq!(
        references(text),
        [
            "crates/a/tests/b.rs::c_d",
            "crates/a/tests/b.rs::e[x/y]",
            "b::c_d",
            "m::tests::*"
        ]
    );
    let tests = [
        Test {
            file: "crates/a/tests/b.rs".into(),
            modules: module_path(Path::new("crates/a/tests/b.rs")),
            name: "c_d".into(),
        },
        Test {
            file: "crates/a/src/k/m.rs".into(),
            modules: module_path(Path::new("crates/a/src/k/m.rs")),
            name: "sqlite_x_y".into(),
        },
    ];
    assert_eq!(check("b::c_d", &tests), None);
    assert_eq!(check("crates/a/tests/b.rs::c_d", &tests), None);
    assert_eq!(check("k::m::tests::*", &tests), None);
    assert_eq!(check("m::*_x_y", &tests), None);
    assert!(check("b::c_e", &tests).is_some());
    assert!(check("n::*", &tests).is_some());
    assert!(check("crates/a/tests/c.rs::c_d", &tests).is_some());
    assert!(check("crates/a/tests/b.md::c_d", &tests).is_some());
    assert!(check("crates/a/tests/b.rs::c_d[x/y", &tests).is_some());
    assert_eq!(
        module_path(Path::new("crates/s/tests/storage/main.rs")),
        ["storage"]
    );
    assert!(test_names("#[test]\nfn c_d() {}").contains(&"c_d".to_owned()));
    assert!(
        test_names("#[tokio::test(flavor = \"x\")]\nasync fn e() {}").contains(&"e".to_owned())
    );
    assert!(test_names("fn c_d() {}").is_empty());
    assert!(glob("*_x_y", "sqlite_x_y") && !glob("*_x_z", "sqlite_x_y"));
}
