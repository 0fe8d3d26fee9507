//! The README's layout table and `docs/architecture.md` describe the crates
//! that exist: every crate directory is a workspace member, has a row in the
//! table and a place in the architecture page, and no row names a crate
//! that is gone.
#![allow(clippy::expect_used, reason = "test code: a panic is a test failure")]

use std::collections::BTreeSet;
use std::path::Path;

fn repository() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repository().join(relative)).expect(relative)
}

/// `crates/NAME` directories holding a `Cargo.toml`.
fn crate_directories() -> BTreeSet<String> {
    std::fs::read_dir(repository().join("crates"))
        .expect("crates/")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry
                .path()
                .join("Cargo.toml")
                .is_file()
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn the_readme_layout_table_and_the_architecture_page_match_the_crates() {
    let crates = crate_directories();
    assert!(crates.len() >= 10, "{crates:?}");

    let readme = read("README.md");
    let layout = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("a Layout section in the README");
    let layout = layout.split("\n## ").next().unwrap_or(layout);
    let rows: BTreeSet<String> = layout
        .lines()
        .filter_map(|line| line.strip_prefix("| `crates/"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        rows, crates,
        "README layout rows (left) and crates/ directories (right) differ"
    );

    let manifest = read("Cargo.toml");
    for name in &crates {
        assert!(
            manifest.contains(&format!("\"crates/{name}\"")),
            "crates/{name} is not a workspace member"
        );
    }

    let architecture = read("docs/architecture.md");
    for name in &crates {
        let package = if name == "xtask" {
            "xtask".to_owned()
        } else {
            format!("podseal-{name}")
        };
        assert!(
            architecture.contains(&package) || architecture.contains(&format!("crates/{name}")),
            "docs/architecture.md does not place {package}"
        );
    }
}
