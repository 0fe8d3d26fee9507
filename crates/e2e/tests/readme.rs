//! Issue 14 §4: the shell blocks of `README.md` and `docs/*.md` run as
//! written. Every ```sh block is marked, on the line before it, either
//! `<!-- shell: run -->` or `<!-- shell: skip: WHY -->`: an unmarked block
//! fails this test, so a new one cannot go unchecked. The `run` blocks are
//! joined in document order (README first) into one bash script under
//! `set -euo pipefail`, with the built binaries first on `PATH`, in a fresh
//! directory and a fresh environment, and run exactly as written: no text is
//! substituted and nothing is set up that the reader does not do (the
//! walkthrough runs against the stand-in it starts itself; real-cluster
//! variants are in `skip` blocks beside it). The output must show what the
//! text says each step shows. Background processes the blocks start are
//! stopped with the script's process group.
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

    // The walkthrough uses the fixed ports a reader's machine has: the
    // stand-in's 6443 and the server's 8443. Cargo runs test binaries one at
    // a time and other tests take ports the kernel picks, so these are free
    // unless something outside the tests holds them: say so plainly.
    for port in [6443, 8443] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "127.0.0.1:{port} is taken: the README walkthrough listens there; stop what holds it"
        );
    }

    let mut script = String::from(
        "set -euo pipefail\ntrap 'echo \"FAILED: exit $? at script line $LINENO\" >&2' ERR\n",
    );
    for block in &runnable {
        script.push_str(&format!("echo '### {}' >&2\n{}\n", block.place, block.text));
    }
    script.push_str("echo '### done' >&2\n");

    // The binaries, built by this test run, first on PATH (the walkthrough's
    // skipped first block builds them and does the same); a fresh shell's
    // environment otherwise: no PODSEAL_* variable of the caller leaks in,
    // and TMPDIR keeps `mktemp -d` inside this test's directory.
    let dir = tempfile::TempDir::new().unwrap();
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
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("TMPDIR", dir.path())
        .env("LANG", "C.UTF-8")
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

    // What the walkthrough says each step shows, in order: the releases and
    // each refusal, for the reason the text gives.
    let expected = [
        "the program got a password of 32 bytes for user app",
        "refused (exit 1)",
        "refused (exit 1)",
        "after the restart: 32 bytes",
        "refused (exit 1)",
        "refused (exit 1)",
        "the new pod: 32 bytes",
    ];
    in_order(&stdout, &expected, &stdout, &stderr);
    // Each refusal for the reason its comment in the text gives.
    let reasons = [
        "the capsule found in Secret db key user was sealed for Secret db key password: refused",
        "(dpop/pod_key_already_pinned)",
        "(live_pod/image_without_digest): ephemeral (debug) container debugger",
        "(live_pod/pod_uid_mismatch)",
    ];
    in_order(&stderr, &reasons, &stdout, &stderr);
}

/// Panics unless `lines` appear in `text` in this order.
fn in_order(text: &str, lines: &[&str], stdout: &str, stderr: &str) {
    let mut rest = text;
    for line in lines {
        let at = rest.find(line).unwrap_or_else(|| {
            panic!("the walkthrough did not print `{line}` where it says it does:\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        });
        rest = &rest[at + line.len()..];
    }
}
