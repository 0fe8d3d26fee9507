//! The crypto-only ceiling: what the servers' CPUs could do if an unwrap
//! were nothing but its cryptography.
//!
//! Per unwrap, on one thread: `podseal_core::dpop::verify_proof` of a real
//! proof (JWS parse, one strict Ed25519 verify, claim checks, the key's
//! thumbprint — what the server runs, slightly more than a raw verify), and
//! `podseal_core::envelope::rewrap_for_release` of a real capsule envelope
//! (one HPKE open of the org wrap, one HPKE seal to the pod's key). The loop
//! runs for a bounded time and count, pinned to the first server CPU when it
//! can be, before any server starts. The ceiling is that rate times the
//! number of CPUs the servers may use.

use std::time::{Duration, Instant};

use podseal_core::capsule::{KubernetesScope, RevealMode, Scope};
use podseal_core::dpop::{DpopKey, ProofExpectations, ProofFor, verify_proof};
use podseal_core::envelope::{self, ReleaseBinding, SealParams};
use podseal_core::hpke::{KemId, LocalPrivateKey, RecipientKey as _};
use podseal_core::key_provider::KeyRing;
use podseal_core::org_key::OrgPrivateKey;
use serde::Serialize;

use crate::cpus::CpuList;

/// What one measured operation does, for the report.
pub const WHAT: &str = "dpop::verify_proof (JWS parse, 1 strict Ed25519 verify, claim checks, thumbprint) + envelope::rewrap_for_release (1 HPKE open + 1 HPKE seal, X25519)";

/// At most this many iterations, whatever the time bound.
const MAX_ITERATIONS: u64 = 1_000_000;

/// The measured ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// What one unwrap's crypto is.
    pub what: &'static str,
    /// Crypto cost of one unwrap, µs.
    pub unwrap_crypto_us: f64,
    /// Unwraps per second on one thread.
    pub per_core_per_s: f64,
    /// CPUs the servers may use.
    pub server_cpus: usize,
    /// `per_core_per_s × server_cpus`.
    pub ceiling_per_s: f64,
    /// Iterations measured.
    pub iterations: u64,
    /// The CPU the loop ran on, when it could be pinned.
    pub pinned_cpu: Option<usize>,
}

/// Why the ceiling could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum CeilingError {
    /// Key generation, sealing, proof or re-wrap failed.
    #[error("the crypto-only loop failed: {0}")]
    Crypto(String),
    /// The measuring thread could not run.
    #[error("the crypto-only loop could not run: {0}")]
    Thread(String),
}

/// Measures for `budget` (at most [`MAX_ITERATIONS`]) on a thread pinned to
/// the first of `server_cpus`.
pub fn measure(budget: Duration, server_cpus: &CpuList) -> Result<Ceiling, CeilingError> {
    let pin = server_cpus
        .first()
        .map(|cpu| CpuList::parse(&cpu.to_string()));
    let thread = std::thread::Builder::new()
        .name("ceiling".into())
        .spawn(move || {
            let pinned = match pin {
                Some(Ok(list)) => list.pin_current_thread().ok().and_then(|()| list.first()),
                _ => None,
            };
            one_thread(budget).map(|(iterations, elapsed)| (iterations, elapsed, pinned))
        })
        .map_err(|e| CeilingError::Thread(e.to_string()))?;
    let (iterations, elapsed, pinned_cpu) = thread
        .join()
        .map_err(|_| CeilingError::Thread("the thread panicked".into()))??;
    let per_op = elapsed.as_secs_f64() / iterations.max(1) as f64;
    let per_core_per_s = if per_op > 0.0 { 1.0 / per_op } else { 0.0 };
    Ok(Ceiling {
        what: WHAT,
        unwrap_crypto_us: per_op * 1e6,
        per_core_per_s,
        server_cpus: server_cpus.len(),
        ceiling_per_s: per_core_per_s * server_cpus.len() as f64,
        iterations,
        pinned_cpu,
    })
}

fn crypto(e: impl std::fmt::Display) -> CeilingError {
    CeilingError::Crypto(e.to_string())
}

/// The loop: returns (iterations, elapsed).
fn one_thread(budget: Duration) -> Result<(u64, Duration), CeilingError> {
    let org = OrgPrivateKey::generate(KemId::X25519HkdfSha256).map_err(crypto)?;
    let capsule = envelope::seal(
        SealParams {
            scope: Scope::Kubernetes(KubernetesScope {
                cluster: "bench".into(),
                namespace: "bench".into(),
                service_accounts: vec!["load".into()],
                name: "ceiling".into(),
                key: None,
            }),
            purpose: None,
            reveal: RevealMode::Many,
            created_at: 1,
            not_after: None,
        },
        &[7u8; 32],
        &[org.public()],
    )
    .map_err(crypto)?;
    let ring = KeyRing::from(org);
    let pod = LocalPrivateKey::generate(KemId::X25519HkdfSha256).map_err(crypto)?;
    let dpop = DpopKey::generate().map_err(crypto)?;
    let now = jiff::Timestamp::now().as_second();
    let session = "ceiling-session-0123456789";
    let htu = "https://podseal.bench/v1/unwrap";
    let (proof, claims) = dpop
        .proof(&ProofFor {
            htm: "POST",
            htu,
            iat: now,
            access_token: Some(session),
            nonce: None,
        })
        .map_err(crypto)?;
    let expect = ProofExpectations {
        htm: "POST",
        htu,
        now,
        max_age_secs: 3600,
        max_skew_secs: 3600,
        access_token: Some(session),
        nonce: None,
    };
    let binding = ReleaseBinding {
        session_id: session,
        jti: &claims.jti,
    };
    let start = Instant::now();
    let mut iterations = 0u64;
    while iterations < MAX_ITERATIONS && (iterations == 0 || start.elapsed() < budget) {
        let verified = verify_proof(std::hint::black_box(&proof), &expect).map_err(crypto)?;
        std::hint::black_box(verified);
        let released = envelope::rewrap_for_release(
            std::hint::black_box(&capsule.envelope),
            &ring,
            pod.public_key_bytes(),
            binding,
        )
        .map_err(crypto)?;
        std::hint::black_box(released);
        iterations += 1;
    }
    Ok((iterations, start.elapsed()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn a_short_measurement_gives_a_plausible_cost() {
        let cpus = CpuList::allowed().unwrap();
        let ceiling = measure(Duration::from_millis(100), &cpus).unwrap();
        assert!(ceiling.iterations > 0);
        // Debug or release, one unwrap's crypto is between 20 µs and 100 ms.
        assert!(
            (20.0..100_000.0).contains(&ceiling.unwrap_crypto_us),
            "{ceiling:?}"
        );
        assert!((ceiling.ceiling_per_s - ceiling.per_core_per_s * cpus.len() as f64).abs() < 1e-6);
    }
}
