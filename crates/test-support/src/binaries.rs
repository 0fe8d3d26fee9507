//! The workspace's binaries, as the tests that run real processes need
//! them: `podseal` (operator), `podseal-server`, `podseal-exec` (pod side)
//! and `podseal-dev` (demo, stand-in cluster, load benchmark).
//!
//! Cargo only hands a test the binaries of its own package, and the
//! end-to-end tests need all four. So the first call in a test process runs
//! `cargo test --workspace --no-run` with the same profile: under the
//! README's `cargo test --workspace` every binary is already built and this
//! is a no-op check; under `cargo test -p X` it builds what is missing or
//! stale, so a test never runs an old binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Variables Cargo sets for a test process (besides `CARGO_PKG_*` and
/// `CARGO_BIN_EXE_*`), none of which a build of the workspace had.
const CARGO_TEST_VARIABLES: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// The directory holding the built binaries (`target/<profile>`), after
/// making sure they are built from the current sources.
fn binary_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/<test>-<hash>
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("a test executable under target/<profile>/deps")
            .to_path_buf();
        let profile = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("debug")
            .to_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["test", "--workspace", "--no-run", "--quiet"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        // Cargo gives a test process its package's variables; a build script
        // that reads one (ring reads CARGO_MANIFEST_DIR) would count as
        // changed and rebuild half the tree. The nested build sees what the
        // outer one saw.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if CARGO_TEST_VARIABLES.contains(&name.as_ref())
                || name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_BIN_EXE_")
            {
                build.env_remove(name.as_ref());
            }
        }
        build.current_dir(env!("CARGO_MANIFEST_DIR"));
        let output = build
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo to build the binaries: {e}"));
        assert!(
            output.status.success(),
            "building the workspace's binaries failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
}

/// The path of the built binary `name`, which must exist.
pub fn binary(name: &str) -> PathBuf {
    let path = binary_dir().join(name);
    assert!(
        path.is_file(),
        "{} was not built (is `{name}` a binary of this workspace?)",
        path.display()
    );
    path
}

/// The operator CLI, `podseal`.
pub fn podseal() -> PathBuf {
    binary("podseal")
}

/// The release server, `podseal-server`.
pub fn server() -> PathBuf {
    binary("podseal-server")
}

/// The pod-side binary, `podseal-exec`.
pub fn exec() -> PathBuf {
    binary("podseal-exec")
}

/// The development tools, `podseal-dev` (demo, stand-in cluster, bench).
pub fn dev() -> PathBuf {
    binary("podseal-dev")
}

/// The `target` directory itself (for tools installed beside the build).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .nth(3)
        .expect("a test executable under target/<profile>/deps")
        .to_path_buf()
}
