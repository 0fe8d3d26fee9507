//! Puts the commit this build was made from into `--version`
//! (`PODSEAL_COMMIT`; "unknown" outside a git checkout). Reruns only when
//! the checked-out commit changes.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn watch(path: &Path) {
    if path.is_file() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        let common = git(&["rev-parse", "--git-common-dir"])
            .map(|dir| git_dir.join(dir))
            .unwrap_or_else(|| git_dir.to_path_buf());
        watch(&git_dir.join("HEAD"));
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(&git_dir.join(&reference));
            watch(&common.join(&reference));
        }
        watch(&common.join("packed-refs"));
    }
    println!("cargo:rustc-env=PODSEAL_COMMIT={commit}");
}
