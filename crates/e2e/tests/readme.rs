//! Issue 14 §4: the shell blocks of `README.md` and `docs/*.md` run as
//! written. Every ```sh block is marked, on the line before it, either
//! `<!-- shell: run -->` or `<!-- shell: skip: WHY -->`: an unmarked block
//! fails this test, so a new one cannot go unchecked. The `run` blocks are
//! joined in document order (README first) into one bash script under
//! `set -euo pipefail`, with the built binaries first on `PATH`, in a fresh
//! directory, and run against the stand-in: the placeholders a reader
//! replaces for a real cluster (its API server, CA and token files, an
//! image digest) are replaced here by the stand-in's, each of which must
//! still be in the text. Background processes the blocks start are stopped
//! with the script's process group.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

/// One ```sh block and where it is.
struct Block {
    place: String,
    run: bool,
    text: String,
}

fn blocks(file: &Path, label: &str, unmarked: &mut Vec<String>) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let place = format!("{label}:{}", i + 1);
            let marker = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
            let run = match marker.map(|l| l.trim()) {
                Some("<!-- shell: run -->") => Some(true),
                Some(l) if l.starts_with("<!-- shell: skip: ") && l.ends_with("-->") => Some(false),
                _ => None,
            };
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .unwrap_or_else(|| panic!("{place}: the block never ends"));
            match run {
                Some(run) => out.push(Block {
                    place,
                    run,
                    text: lines[i + 1..end].join("\n"),
                }),
                None => unmarked.push(place),
            }
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn every_shell_block_of_the_readme_and_docs_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![(root.join("README.md"), "README.md".to_owned())];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs.into_iter().map(|p| {
        let label = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
        (p, label)
    }));
    let mut unmarked = Vec::new();
    let all: Vec<Block> = files
        .iter()
        .flat_map(|(path, label)| blocks(path, label, &mut unmarked))
        .collect();
    assert!(
        unmarked.is_empty(),
        "shell blocks without a `<!-- shell: run -->` or `<!-- shell: skip: WHY -->` line before them: {unmarked:?}"
    );
    let runnable: Vec<&Block> = all.iter().filter(|b| b.run).collect();
    assert!(
        runnable.len() >= 4,
        "too few blocks run: {}",
        runnable.len()
    );

    let dir = tempfile::TempDir::new().unwrap();
    let (_cluster, cluster_url) = support::start_dev_cluster(&dir.path().join("stand-in"));
    let stand_in = |name: &str| dir.path().join("stand-in").join(name).display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // What a reader replaces for a real cluster, replaced by the stand-in's.
    let substitutions = [
        ("https://10.0.0.1:6443", cluster_url.clone()),
        ("/etc/podseal/prod-ca.pem", stand_in("ca.pem")),
        ("/etc/podseal/prod-reader.token", stand_in("reader.token")),
        ("sha256:<64 hex>", format!("sha256:{}", "a".repeat(64))),
        ("127.0.0.1:8443", format!("127.0.0.1:{port}")),
    ];
    let mut script = String::from(
        "set -euo pipefail\ntrap 'echo \"FAILED: exit $? at script line $LINENO\" >&2' ERR\n",
    );
    for block in &runnable {
        script.push_str(&format!("echo '### {}' >&2\n{}\n", block.place, block.text));
    }
    for (from, to) in &substitutions {
        assert!(
            script.contains(from),
            "`{from}` is no longer in the docs: update this test"
        );
        script = script.replace(from, to);
    }
    script.push_str("echo '### done' >&2\n");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("pw.txt"), "s3cret-pw").unwrap();
    std::fs::write(work.join("user.txt"), "app").unwrap();
    let bin = podseal_test_support::binaries::podseal();
    let _ = (
        podseal_test_support::binaries::server(),
        podseal_test_support::binaries::dev(),
        podseal_test_support::binaries::exec(),
    );
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("DB_PASSWORD", "hunter2-from-the-readme")
        .env("PODSEAL_LISTEN", format!("127.0.0.1:{port}"))
        .env("PODSEAL_EXTERNAL_URL", format!("https://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The servers the blocks started in the background, and anything left.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.is_some_and(|s| s.success()) && stderr.contains("### done"),
        "the docs' shell blocks did not run as written ({status:?}):\n--- stderr\n{stderr}\n--- stdout\n{stdout}"
    );
}
