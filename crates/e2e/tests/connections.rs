//! Connection bounds of `podseal-server`, as a real process over real TLS:
//! a connection that finishes its handshake and then says nothing, an
//! HTTP/1.1 keep-alive or HTTP/2 connection left idle, and one source
//! opening thousands of connections — none of them may keep a slot from
//! another client (issue 12, item 2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a test failure"
)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Process, port_of, run_ok, spawn};
use tempfile::TempDir;

fn bin() -> PathBuf {
    podseal_test_support::binaries::podseal()
}

/// A server with no cluster, under `extra` connection settings.
fn start_server(dir: &Path, extra: &[(&str, &str)]) -> (Process, SocketAddr) {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    run_ok(&bin(), &["keys", "init", "--out", &p("keys")], &[]);
    let mut env = vec![
        ("PODSEAL_ORG_KEY_FILES", p("keys/org.key")),
        ("PODSEAL_STATE_DIR", p("state")),
        ("PODSEAL_LISTEN", "127.0.0.1:0".to_owned()),
        ("PODSEAL_EXTERNAL_URL", "https://localhost".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (server, line, _) = spawn(
        &podseal_test_support::binaries::server(),
        &["--admin-token-file", &p("admin.token")],
        &env,
        true,
        "listening on",
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", port_of(&line)).parse().unwrap();
    (server, addr)
}

fn client_config(dir: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("state/tls-dev.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // An empty `alpn` offers none (the server then speaks HTTP/1.1).
    config.alpn_protocols = if alpn.is_empty() {
        Vec::new()
    } else {
        vec![alpn.to_vec()]
    };
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TCP connection from `source`: any 127.0.0.0/8 address is this
/// machine, so a second address stands for a second client host.
fn connect_from(
    runtime: &tokio::runtime::Runtime,
    source: IpAddr,
    addr: SocketAddr,
) -> std::io::Result<TcpStream> {
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket.connect(addr).await?.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

/// A finished TLS handshake on a new connection.
fn handshake(config: &Arc<rustls::ClientConfig>, tcp: TcpStream) -> std::io::Result<Tls> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Waits (deadline `within`) for the server to close `tls`; returns how long it took.
fn closed_within(tls: &mut Tls, within: Duration) -> Duration {
    let start = Instant::now();
    tls.sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the server kept an idle connection open for more than {within:?}")
            }
            // Reset or a TLS close without close_notify: closed all the same.
            Err(_) => return start.elapsed(),
        }
    }
}

fn get_healthz(tls: &mut Tls) -> String {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    tls.flush().unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap()
}

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

#[test]
fn silent_and_idle_connections_are_closed() {
    let dir = TempDir::new().unwrap();
    let (_server, addr) = start_server(
        dir.path(),
        &[
            ("PODSEAL_CONNECTIONS_FIRST_REQUEST_TIMEOUT_SECS", "2"),
            ("PODSEAL_CONNECTIONS_IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    let rt = runtime();
    let bound = Duration::from_secs(10);

    // Handshake finished, then silence (HTTP/1.1, HTTP/2 and no ALPN alike).
    for alpn in [&b"http/1.1"[..], b"h2", b""] {
        let config = client_config(dir.path(), alpn);
        let mut tls = handshake(&config, connect_from(&rt, CLIENT, addr).unwrap()).unwrap();
        let took = closed_within(&mut tls, bound);
        eprintln!(
            "silent after the handshake (alpn {:?}): closed after {took:?}",
            String::from_utf8_lossy(alpn)
        );
        assert!(
            took >= Duration::from_millis(1500),
            "closed too early: {took:?}"
        );
    }

    // One request, then an idle keep-alive connection.
    let config = client_config(dir.path(), b"http/1.1");
    let mut tls = handshake(&config, connect_from(&rt, CLIENT, addr).unwrap()).unwrap();
    assert!(get_healthz(&mut tls).starts_with("HTTP/1.1 200"));
    let took = closed_within(&mut tls, bound);
    eprintln!("idle keep-alive: closed after {took:?}");

    // HTTP/2: the preface and SETTINGS, then no stream.
    let config = client_config(dir.path(), b"h2");
    let mut tls = handshake(&config, connect_from(&rt, CLIENT, addr).unwrap()).unwrap();
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    tls.flush().unwrap();
    let took = closed_within(&mut tls, bound);
    eprintln!("idle HTTP/2 after the preface: closed after {took:?}");
}

#[test]
fn one_source_cannot_take_every_connection_slot() {
    let dir = TempDir::new().unwrap();
    // The longest first-request deadline the configuration allows (60 s),
    // so the flood is still held when the other client is served however
    // slowly this machine opens 4096 connections (12 s seen under load).
    let deadline = Duration::from_secs(60);
    let (_server, addr) = start_server(
        dir.path(),
        &[("PODSEAL_CONNECTIONS_FIRST_REQUEST_TIMEOUT_SECS", "60")],
    );
    let rt = runtime();
    let config = client_config(dir.path(), b"http/1.1");
    let flooder = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    let started = Instant::now();
    let mut held = Vec::new();
    let mut raw = Vec::new();
    let mut finished_tls = 0;
    for _ in 0..4096 {
        let tcp = connect_from(&rt, flooder, addr).unwrap();
        // The first ones finish TLS and then say nothing; past the
        // per-source limit the server closes them at once.
        if finished_tls < 300 {
            match handshake(&config, tcp) {
                Ok(tls) => {
                    finished_tls += 1;
                    held.push(tls);
                }
                Err(_) => finished_tls = usize::MAX,
            }
        } else {
            raw.push(tcp);
        }
    }
    eprintln!(
        "4096 connections from {flooder} opened in {:?} ({} finished TLS)",
        started.elapsed(),
        held.len()
    );
    assert!(
        held.len() <= 256,
        "more than the per-source limit finished TLS"
    );
    // Another client is served at once, while the flood is held.
    let start = Instant::now();
    let tcp = connect_from(&rt, CLIENT, addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = handshake(&config, tcp).unwrap();
    let answer = get_healthz(&mut tls);
    let took = start.elapsed();
    eprintln!("a valid request while the flood is held: {took:?}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < deadline,
        "the flood was not held throughout"
    );
    drop((held, raw));
}
