//! The release scope: who may open a capsule, as a tagged union over the
//! kinds of workload identity, and the one function that decides whether a
//! verified identity is inside it.
//!
//! A scope is part of the capsule header, so it is authenticated by every
//! AEAD of the capsule and fixed for the capsule's life. In the header JSON
//! it is an object with exactly one key, the kind, whose value holds that
//! kind's fields:
//!
//! ```text
//! {"kubernetes": {"cluster": "c1", "namespace": "shop", "service_accounts": ["api"], "name": "db"}}
//! {"spiffe": {"trust_domain": "example.org", "ids": ["spiffe://example.org/ns/shop/sa/api"]}}
//! {"oidc": {"issuer": "https://token.actions.githubusercontent.com", "claims": {"repository": ["octo/app"]}}}
//! ```
//!
//! Each kind refuses unknown fields. Identity providers (the release
//! server's gate 2) produce a [`VerifiedIdentity`]; [`check`] compares it
//! with a scope and names the first field that does not match. Nothing here
//! does I/O: the server, the CLI (`podseal inspect`) and the tests share it.

use crate::reason::Reason;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most SPIFFE IDs, OIDC claims or allowed values of one claim a scope
/// may list (the header's 8 KiB bound applies as well).
pub const MAX_LIST_LEN: usize = 64;
/// The longest SPIFFE ID (SPIFFE-ID spec §2.3: 2048 bytes).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// The longest trust domain name (SPIFFE-ID spec §2.1: 255 characters).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// The longest OIDC issuer URL accepted.
pub const MAX_ISSUER_LEN: usize = 1024;
/// The longest OIDC claim name accepted.
pub const MAX_CLAIM_NAME_LEN: usize = 256;
/// The longest allowed OIDC claim value accepted.
pub const MAX_CLAIM_VALUE_LEN: usize = 1024;

/// Which kind of identity a scope (or a verified caller) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// A Kubernetes service account, verified from a projected token.
    Kubernetes,
    /// A SPIFFE ID, verified from a JWT-SVID.
    Spiffe,
    /// An OIDC token from a pinned issuer, matched by its claims.
    Oidc,
}

impl ScopeKind {
    /// Every kind this build knows, in the order they are documented.
    pub const ALL: [Self; 3] = [Self::Kubernetes, Self::Spiffe, Self::Oidc];

    /// The kind's name in the header JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Spiffe => "spiffe",
            Self::Oidc => "oidc",
        }
    }

    /// The kind named `name` in the header JSON, if this build knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a capsule may be released: the identity the server must verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Pods of a cluster, by namespace and service account.
    Kubernetes(KubernetesScope),
    /// Workloads holding one of some SPIFFE IDs.
    Spiffe(SpiffeScope),
    /// Holders of an OIDC token from one issuer, by claim values.
    Oidc(OidcScope),
}

/// A Kubernetes scope: the capsule opens for pods of `namespace` on
/// `cluster` running as one of `service_accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesScope {
    /// The cluster name the server knows the cluster by.
    pub cluster: String,
    /// The namespace of the pods that may receive it.
    pub namespace: String,
    /// The service accounts (in that namespace) that may receive it.
    pub service_accounts: Vec<String>,
    /// The secret's name (the Kubernetes `Secret`'s name for manifests).
    pub name: String,
    /// The data key within that `Secret`, when the capsule is one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A SPIFFE scope: the capsule opens for a workload whose verified SPIFFE ID
/// is one of `ids`, all in `trust_domain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpiffeScope {
    /// The trust domain every id belongs to.
    pub trust_domain: String,
    /// The SPIFFE IDs that may receive it (`spiffe://<trust_domain>/<path>`).
    pub ids: Vec<String>,
}

/// An OIDC scope: the capsule opens for a token from `issuer` whose every
/// listed claim has one of its allowed values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcScope {
    /// The issuer (`iss`), an https URL without query or fragment.
    pub issuer: String,
    /// Claim name → the string values it may have (all claims must match).
    #[serde(deserialize_with = "claims_without_duplicates")]
    pub claims: BTreeMap<String, Vec<String>>,
}

impl From<KubernetesScope> for Scope {
    fn from(scope: KubernetesScope) -> Self {
        Self::Kubernetes(scope)
    }
}

/// A scope field with a value this build refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope field `{field}` is invalid: {reason}")]
pub struct ScopeError {
    /// The field, as `scope.<kind>.<name>`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl std::fmt::Display) -> ScopeError {
    ScopeError {
        field,
        reason: reason.to_string(),
    }
}

/// The rule a name, a list or a scope field breaks, in the words of an
/// error line (`… is invalid: must be 1 to 63 characters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleBroken {
    /// Empty, or longer than `max` characters.
    #[error("must be 1 to {max} characters")]
    Characters {
        /// The most allowed.
        max: usize,
    },
    /// Empty, or longer than `max` bytes.
    #[error("must be 1 to {max} bytes")]
    Bytes {
        /// The most allowed.
        max: usize,
    },
    /// A list with no entry, or more than `max`.
    #[error("must list 1 to {max}")]
    ListLength {
        /// The most allowed.
        max: usize,
    },
    /// The characters or the shape the rule allows, said in full.
    #[error("{0}")]
    Form(&'static str),
}

impl Scope {
    /// The scope's kind.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Self::Kubernetes(_) => ScopeKind::Kubernetes,
            Self::Spiffe(_) => ScopeKind::Spiffe,
            Self::Oidc(_) => ScopeKind::Oidc,
        }
    }

    /// The Kubernetes fields, when this is a Kubernetes scope.
    pub fn as_kubernetes(&self) -> Option<&KubernetesScope> {
        match self {
            Self::Kubernetes(scope) => Some(scope),
            _ => None,
        }
    }

    /// The Kubernetes fields, mutably (tests that edit a header use it).
    pub fn as_kubernetes_mut(&mut self) -> Option<&mut KubernetesScope> {
        match self {
            Self::Kubernetes(scope) => Some(scope),
            _ => None,
        }
    }

    /// Checks every field against its kind's rules.
    pub fn validate(&self) -> Result<(), ScopeError> {
        match self {
            Self::Kubernetes(scope) => scope.validate(),
            Self::Spiffe(scope) => scope.validate(),
            Self::Oidc(scope) => scope.validate(),
        }
    }

    /// Who may open a capsule of this scope, in words, e.g. "pods running as
    /// service account api or worker in namespace shop on cluster c1".
    pub fn who_may_open(&self) -> String {
        match self {
            Self::Kubernetes(s) => format!(
                "pods running as service account {} in namespace {} on cluster {}",
                or_list(&s.service_accounts),
                s.namespace,
                s.cluster
            ),
            Self::Spiffe(s) => format!(
                "workloads holding the SPIFFE ID {} (trust domain {})",
                or_list(&s.ids),
                s.trust_domain
            ),
            Self::Oidc(s) => {
                let claims: Vec<String> = s
                    .claims
                    .iter()
                    .map(|(name, values)| format!("{name} is {}", or_list(values)))
                    .collect();
                format!(
                    "holders of a token issued by {} whose claim {}",
                    s.issuer,
                    claims.join(" and whose claim ")
                )
            }
        }
    }
}

/// "a", "a or b", "a, b or c".
fn or_list(items: &[String]) -> String {
    match items {
        [] => "(none)".into(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl KubernetesScope {
    /// Checks names against Kubernetes' own rules.
    pub fn validate(&self) -> Result<(), ScopeError> {
        check_name(&self.cluster, NameRule::Label)
            .map_err(|r| invalid("scope.kubernetes.cluster", r))?;
        check_name(&self.namespace, NameRule::Label)
            .map_err(|r| invalid("scope.kubernetes.namespace", r))?;
        const SAS: &str = "scope.kubernetes.service_accounts";
        check_list_len(self.service_accounts.len()).map_err(|r| invalid(SAS, r))?;
        for (i, sa) in self.service_accounts.iter().enumerate() {
            check_name(sa, NameRule::Subdomain).map_err(|r| invalid(SAS, r))?;
            if self.service_accounts.iter().take(i).any(|o| o == sa) {
                return Err(invalid(SAS, format!("`{sa}` is listed twice")));
            }
        }
        check_name(&self.name, NameRule::Subdomain)
            .map_err(|r| invalid("scope.kubernetes.name", r))?;
        if let Some(key) = &self.key {
            check_name(key, NameRule::SecretKey).map_err(|r| invalid("scope.kubernetes.key", r))?;
        }
        Ok(())
    }
}

impl SpiffeScope {
    /// Checks the trust domain and every id against the SPIFFE-ID spec
    /// (§2.1 trust domain, §2.2 path), and that every id is in the trust
    /// domain and names a workload (a non-empty path).
    pub fn validate(&self) -> Result<(), ScopeError> {
        check_trust_domain(&self.trust_domain)
            .map_err(|r| invalid("scope.spiffe.trust_domain", r))?;
        const IDS: &str = "scope.spiffe.ids";
        check_list_len(self.ids.len()).map_err(|r| invalid(IDS, r))?;
        for (i, id) in self.ids.iter().enumerate() {
            let path = spiffe_id_parts(id)
                .filter(|(domain, _)| *domain == self.trust_domain)
                .map(|(_, path)| path)
                .ok_or_else(|| {
                    invalid(
                        IDS,
                        format!("each id must start with spiffe://{}/", self.trust_domain),
                    )
                })?;
            check_spiffe_path(path).map_err(|r| invalid(IDS, r))?;
            if id.len() > MAX_SPIFFE_ID_LEN {
                return Err(invalid(
                    IDS,
                    format!("an id is longer than {MAX_SPIFFE_ID_LEN} bytes"),
                ));
            }
            if self.ids.iter().take(i).any(|o| o == id) {
                return Err(invalid(IDS, format!("`{id}` is listed twice")));
            }
        }
        Ok(())
    }
}

/// Splits `spiffe://<trust domain><path>` into its trust domain and path
/// (empty or starting with `/`); `None` without the scheme.
fn spiffe_id_parts(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("spiffe://")?;
    Some(rest.find('/').map_or((rest, ""), |at| rest.split_at(at)))
}

fn check_trust_domain(name: &str) -> Result<(), RuleBroken> {
    if name.is_empty() || name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(RuleBroken::Characters {
            max: MAX_TRUST_DOMAIN_LEN,
        });
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b);
    if name.bytes().all(allowed) {
        Ok(())
    } else {
        Err(RuleBroken::Form(
            "must be lowercase letters, digits, '-', '.' and '_'",
        ))
    }
}

fn check_spiffe_path(path: &str) -> Result<(), RuleBroken> {
    let Some(segments) = path.strip_prefix('/') else {
        return Err(RuleBroken::Form(
            "an id must name a workload: spiffe://<trust domain>/<path>",
        ));
    };
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
    for segment in segments.split('/') {
        if segment.is_empty() {
            return Err(RuleBroken::Form(
                "a path has an empty segment or a trailing '/'",
            ));
        }
        if segment == "." || segment == ".." {
            return Err(RuleBroken::Form("a path segment is '.' or '..'"));
        }
        if !segment.bytes().all(allowed) {
            return Err(RuleBroken::Form(
                "path segments must be letters, digits, '-', '.' and '_'",
            ));
        }
    }
    Ok(())
}

impl OidcScope {
    /// Checks the issuer (an https URL without query, fragment or userinfo,
    /// as OpenID Connect Discovery §3 requires) and the claims (1 to
    /// [`MAX_LIST_LEN`] names, each with 1 to [`MAX_LIST_LEN`] distinct
    /// values, all bounded and free of control characters).
    pub fn validate(&self) -> Result<(), ScopeError> {
        check_issuer(&self.issuer).map_err(|r| invalid("scope.oidc.issuer", r))?;
        const CLAIMS: &str = "scope.oidc.claims";
        check_list_len(self.claims.len()).map_err(|r| invalid(CLAIMS, r))?;
        for (name, values) in &self.claims {
            check_text(name, MAX_CLAIM_NAME_LEN)
                .map_err(|r| invalid(CLAIMS, format!("a claim name {r}")))?;
            check_list_len(values.len())
                .map_err(|r| invalid(CLAIMS, format!("claim `{name}`: values {r}")))?;
            for (i, value) in values.iter().enumerate() {
                check_text(value, MAX_CLAIM_VALUE_LEN)
                    .map_err(|r| invalid(CLAIMS, format!("claim `{name}`: a value {r}")))?;
                if values.iter().take(i).any(|o| o == value) {
                    return Err(invalid(
                        CLAIMS,
                        format!("claim `{name}`: `{value}` is listed twice"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_issuer(issuer: &str) -> Result<(), RuleBroken> {
    const RULE: RuleBroken =
        RuleBroken::Form("must be an https URL without userinfo, query or fragment");
    if issuer.is_empty() || issuer.len() > MAX_ISSUER_LEN {
        return Err(RuleBroken::Characters {
            max: MAX_ISSUER_LEN,
        });
    }
    // `http::Uri` has no fragment; a '#' anywhere is refused here.
    if issuer.contains('#') || !issuer.starts_with("https://") {
        return Err(RULE);
    }
    let uri: http::Uri = issuer.parse().map_err(|_| RULE)?;
    let plain_authority = uri.authority().is_some_and(|a| {
        !a.as_str().contains('@') && !a.host().is_empty() && a.as_str().matches(':').count() <= 1
    });
    if uri.scheme_str() != Some("https") || !plain_authority || uri.query().is_some() {
        return Err(RULE);
    }
    Ok(())
}

fn check_list_len(len: usize) -> Result<(), RuleBroken> {
    if len == 0 || len > MAX_LIST_LEN {
        Err(RuleBroken::ListLength { max: MAX_LIST_LEN })
    } else {
        Ok(())
    }
}

fn check_text(text: &str, max: usize) -> Result<(), RuleBroken> {
    if text.is_empty() || text.len() > max {
        return Err(RuleBroken::Bytes { max });
    }
    if text.chars().any(char::is_control) {
        return Err(RuleBroken::Form("must not hold control characters"));
    }
    Ok(())
}

/// A JSON object read into a map, refusing a name given twice (serde's own
/// map impl keeps the last one, so two readers could disagree on a scope).
fn claims_without_duplicates<'de, D>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Claims;
    impl<'de> serde::de::Visitor<'de> for Claims {
        type Value = BTreeMap<String, Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of claim name to a list of allowed values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut claims = BTreeMap::new();
            while let Some((name, values)) = map.next_entry::<String, Vec<String>>()? {
                if claims.contains_key(&name) {
                    return Err(serde::de::Error::custom(format_args!(
                        "claim `{name}` is given twice"
                    )));
                }
                claims.insert(name, values);
            }
            Ok(claims)
        }
    }
    d.deserialize_map(Claims)
}

/// An identity an identity provider has verified (gate 2), as the scope
/// check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedIdentity<'a> {
    /// A pod's projected service-account token.
    Kubernetes(KubernetesIdentity<'a>),
    /// A JWT-SVID.
    Spiffe(SpiffeIdentity<'a>),
    /// An OIDC token.
    Oidc(OidcIdentity<'a>),
}

/// A verified Kubernetes workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubernetesIdentity<'a> {
    /// The cluster whose pinned keys verified the token.
    pub cluster: &'a str,
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's service account.
    pub service_account: &'a str,
}

/// A verified SPIFFE workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiffeIdentity<'a> {
    /// The SVID's SPIFFE ID (its `sub`), already validated by the provider.
    pub id: &'a str,
}

/// A verified OIDC token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OidcIdentity<'a> {
    /// The token's `iss`.
    pub issuer: &'a str,
    /// The token's claims whose values are strings (others cannot match).
    pub claims: &'a BTreeMap<String, String>,
}

impl VerifiedIdentity<'_> {
    /// The identity's kind.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Self::Kubernetes(_) => ScopeKind::Kubernetes,
            Self::Spiffe(_) => ScopeKind::Spiffe,
            Self::Oidc(_) => ScopeKind::Oidc,
        }
    }
}

/// Why a verified identity is outside a scope: the first field that differs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeMismatch {
    /// The scope is of another kind than the identity.
    #[error("the capsule's scope is {scope}; the caller is a {identity} identity")]
    Kind {
        /// The scope's kind.
        scope: ScopeKind,
        /// The identity's kind.
        identity: ScopeKind,
    },
    /// Another Kubernetes cluster.
    #[error("the capsule is sealed for another cluster")]
    Cluster,
    /// Another Kubernetes namespace.
    #[error("the capsule is sealed for another namespace")]
    Namespace,
    /// A service account not listed.
    #[error("the capsule is not sealed for this service account")]
    ServiceAccount,
    /// Another SPIFFE trust domain.
    #[error("the capsule is sealed for another SPIFFE trust domain")]
    TrustDomain,
    /// A SPIFFE ID not listed.
    #[error("the capsule is not sealed for this SPIFFE ID")]
    SpiffeId,
    /// Another OIDC issuer.
    #[error("the capsule is sealed for another token issuer")]
    Issuer,
    /// A claim missing or with a value not listed.
    #[error("the token's claim `{name}` is missing or has a value the capsule does not allow")]
    Claim {
        /// The claim's name (from the capsule's public header).
        name: String,
    },
}

impl ScopeMismatch {
    /// The scope field that did not match.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Kind { .. } => "scope",
            Self::Cluster => "scope.kubernetes.cluster",
            Self::Namespace => "scope.kubernetes.namespace",
            Self::ServiceAccount => "scope.kubernetes.service_accounts",
            Self::TrustDomain => "scope.spiffe.trust_domain",
            Self::SpiffeId => "scope.spiffe.ids",
            Self::Issuer => "scope.oidc.issuer",
            Self::Claim { .. } => "scope.oidc.claims",
        }
    }

    /// A stable machine-readable code (problem+json and audit).
    pub fn reason(&self) -> Reason {
        match self {
            Self::Kind { .. } => Reason::ScopeKindMismatch,
            Self::Cluster => Reason::ClusterMismatch,
            Self::Namespace => Reason::NamespaceMismatch,
            Self::ServiceAccount => Reason::ServiceAccountMismatch,
            Self::TrustDomain => Reason::TrustDomainMismatch,
            Self::SpiffeId => Reason::SpiffeIdMismatch,
            Self::Issuer => Reason::IssuerMismatch,
            Self::Claim { .. } => Reason::ClaimMismatch,
        }
    }
}

/// Whether `identity` may receive a capsule of `scope`: `Ok` when every
/// field matches, else the first that does not, in the order of the
/// scope's fields. Comparisons are exact (no case folding, no prefixes).
pub fn check(scope: &Scope, identity: &VerifiedIdentity<'_>) -> Result<(), ScopeMismatch> {
    match (scope, identity) {
        (Scope::Kubernetes(s), VerifiedIdentity::Kubernetes(id)) => {
            if s.cluster != id.cluster {
                Err(ScopeMismatch::Cluster)
            } else if s.namespace != id.namespace {
                Err(ScopeMismatch::Namespace)
            } else if !s.service_accounts.iter().any(|sa| sa == id.service_account) {
                Err(ScopeMismatch::ServiceAccount)
            } else {
                Ok(())
            }
        }
        (Scope::Spiffe(s), VerifiedIdentity::Spiffe(id)) => {
            let domain = spiffe_id_parts(id.id).map(|(domain, _)| domain);
            if domain != Some(s.trust_domain.as_str()) {
                Err(ScopeMismatch::TrustDomain)
            } else if !s.ids.iter().any(|allowed| allowed == id.id) {
                Err(ScopeMismatch::SpiffeId)
            } else {
                Ok(())
            }
        }
        (Scope::Oidc(s), VerifiedIdentity::Oidc(id)) => {
            if s.issuer != id.issuer {
                return Err(ScopeMismatch::Issuer);
            }
            match s.claims.iter().find(|(name, allowed)| {
                !id.claims
                    .get(name.as_str())
                    .is_some_and(|value| allowed.iter().any(|a| a == value))
            }) {
                Some((name, _)) => Err(ScopeMismatch::Claim { name: name.clone() }),
                None => Ok(()),
            }
        }
        _ => Err(ScopeMismatch::Kind {
            scope: scope.kind(),
            identity: identity.kind(),
        }),
    }
}

/// A Kubernetes Secret's name and data key, as the pod spec names the place
/// a capsule was read from (`secretKeyRef`, a Secret volume). The pod side
/// compares it with the capsule's own header ([`SecretSlot::check`]): a
/// Secret writer can move a capsule between keys or Secrets, but cannot
/// change the pod spec nor the header, which every AEAD of the capsule
/// authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretSlot {
    /// The Secret's name.
    pub secret: String,
    /// The data key within it.
    pub key: String,
}

impl SecretSlot {
    /// A slot from a Secret name and key, each checked against Kubernetes'
    /// naming rules.
    pub fn new(secret: &str, key: &str) -> Result<Self, SlotError> {
        check_name(secret, NameRule::Subdomain).map_err(|why| SlotError::SecretName {
            name: secret.to_owned(),
            why,
        })?;
        check_name(key, NameRule::SecretKey).map_err(|why| SlotError::SecretKey {
            key: key.to_owned(),
            why,
        })?;
        Ok(Self {
            secret: secret.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Parses `SECRET/KEY`.
    pub fn parse(text: &str) -> Result<Self, SlotError> {
        let (secret, key) = text
            .split_once('/')
            .ok_or_else(|| SlotError::NotSecretSlashKey(text.to_owned()))?;
        Self::new(secret, key)
    }

    /// `Ok` when `scope` was sealed for exactly this Secret and key: a
    /// Kubernetes scope whose `name` is the Secret and whose `key` is the
    /// key. A header without a key, or of another kind, does not match.
    pub fn check(&self, scope: &Scope) -> Result<(), SlotMismatch> {
        let sealed_for = scope
            .as_kubernetes()
            .map(|s| (s.name.clone(), s.key.clone()));
        match &sealed_for {
            Some((name, Some(key))) if *name == self.secret && *key == self.key => Ok(()),
            _ => Err(SlotMismatch {
                found_in: self.clone(),
                sealed_for,
            }),
        }
    }
}

impl std::fmt::Display for SecretSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {} key {}", self.secret, self.key)
    }
}

/// A `SECRET/KEY` that names no Secret and key Kubernetes would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// No `/` between the two.
    #[error("`{0}` is not SECRET/KEY")]
    NotSecretSlashKey(String),
    /// The Secret's name breaks the RFC 1123 subdomain rule.
    #[error("Secret name `{name}` is invalid: {why}")]
    SecretName {
        /// The name given.
        name: String,
        /// The rule it breaks.
        why: RuleBroken,
    },
    /// The data key breaks the Secret key rule.
    #[error("Secret key `{key}` is invalid: {why}")]
    SecretKey {
        /// The key given.
        key: String,
        /// The rule it breaks.
        why: RuleBroken,
    },
}

/// A capsule found in one Secret and key but sealed for another: both are
/// named (never the plaintext, which is not opened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the capsule found in {found_in} was sealed for {}: refused, a capsule moved to another Secret or key is never opened", sealed_for_words(.sealed_for))]
pub struct SlotMismatch {
    /// Where the pod spec says the capsule was read from.
    pub found_in: SecretSlot,
    /// The header's `name` and `key`; `None` for a scope of another kind.
    pub sealed_for: Option<(String, Option<String>)>,
}

fn sealed_for_words(sealed_for: &Option<(String, Option<String>)>) -> String {
    match sealed_for {
        Some((name, Some(key))) => format!("Secret {name} key {key}"),
        Some((name, None)) => format!("Secret {name} without a key"),
        None => "no Kubernetes Secret (its scope is of another kind)".into(),
    }
}

/// Which Kubernetes naming rule a name follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
    Label,
    /// RFC 1123 subdomain: labels joined by dots, at most 253 characters.
    Subdomain,
    /// A `Secret` data key: `[-._a-zA-Z0-9]+`, at most 253 characters.
    SecretKey,
}

/// Checks `name` against `rule`, saying what is wrong.
pub fn check_name(name: &str, rule: NameRule) -> Result<(), RuleBroken> {
    let max = if rule == NameRule::Label { 63 } else { 253 };
    if name.is_empty() || name.len() > max {
        return Err(RuleBroken::Characters { max });
    }
    let ok = match rule {
        NameRule::SecretKey => {
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                && name != "."
                && name != ".."
        }
        NameRule::Label => is_label(name),
        NameRule::Subdomain => name.split('.').all(is_label),
    };
    if ok {
        Ok(())
    } else {
        Err(RuleBroken::Form(match rule {
            NameRule::Label => {
                "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
            }
            NameRule::Subdomain => {
                "must be lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit"
            }
            NameRule::SecretKey => "must be letters, digits, '-', '_' and '.'",
        }))
    }
}

fn is_label(part: &str) -> bool {
    let bytes = part.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubernetes() -> Scope {
        Scope::Kubernetes(KubernetesScope {
            cluster: "c1".into(),
            namespace: "shop".into(),
            service_accounts: vec!["api".into(), "worker".into()],
            name: "db".into(),
            key: None,
        })
    }

    fn spiffe() -> Scope {
        Scope::Spiffe(SpiffeScope {
            trust_domain: "example.org".into(),
            ids: vec![
                "spiffe://example.org/ns/shop/sa/api".into(),
                "spiffe://example.org/web".into(),
            ],
        })
    }

    fn oidc() -> Scope {
        Scope::Oidc(OidcScope {
            issuer: "https://token.actions.githubusercontent.com".into(),
            claims: BTreeMap::from([
                ("repository".into(), vec!["octo/app".into()]),
                (
                    "ref".into(),
                    vec!["refs/heads/main".into(), "refs/tags/v1".into()],
                ),
            ]),
        })
    }

    #[test]
    fn each_kind_serializes_as_one_key_and_parses_back() {
        for (scope, key) in [
            (kubernetes(), "kubernetes"),
            (spiffe(), "spiffe"),
            (oidc(), "oidc"),
        ] {
            scope.validate().unwrap();
            let json = serde_json::to_value(&scope).unwrap();
            let object = json.as_object().unwrap();
            assert_eq!(object.keys().collect::<Vec<_>>(), [key]);
            let back: Scope = serde_json::from_value(json).unwrap();
            assert_eq!(back, scope);
            assert_eq!(back.kind().as_str(), key);
        }
    }

    #[test]
    fn every_kind_refuses_unknown_fields() {
        for text in [
            r#"{"kubernetes":{"cluster":"c","namespace":"n","service_accounts":["a"],"name":"x","admin":true}}"#,
            r#"{"spiffe":{"trust_domain":"t","ids":["spiffe://t/a"],"admin":true}}"#,
            r#"{"oidc":{"issuer":"https://i","claims":{"a":["b"]},"admin":true}}"#,
        ] {
            let err = serde_json::from_str::<Scope>(text).unwrap_err();
            assert!(err.to_string().contains("unknown field `admin`"), "{err}");
        }
    }

    #[test]
    fn spiffe_scopes_follow_the_spiffe_id_rules() {
        let with = |trust_domain: &str, id: &str| {
            Scope::Spiffe(SpiffeScope {
                trust_domain: trust_domain.into(),
                ids: vec![id.into()],
            })
            .validate()
        };
        with("example.org", "spiffe://example.org/a/b-c_d.e").unwrap();
        let refused = [
            (
                "Example.org",
                "spiffe://Example.org/a",
                "scope.spiffe.trust_domain",
            ),
            ("", "spiffe://x/a", "scope.spiffe.trust_domain"),
            (
                "exa mple",
                "spiffe://exa mple/a",
                "scope.spiffe.trust_domain",
            ),
            ("example.org", "spiffe://other.org/a", "scope.spiffe.ids"),
            ("example.org", "https://example.org/a", "scope.spiffe.ids"),
            ("example.org", "spiffe://example.org", "scope.spiffe.ids"),
            ("example.org", "spiffe://example.org/", "scope.spiffe.ids"),
            ("example.org", "spiffe://example.org/a/", "scope.spiffe.ids"),
            ("example.org", "spiffe://example.org//a", "scope.spiffe.ids"),
            (
                "example.org",
                "spiffe://example.org/a/../b",
                "scope.spiffe.ids",
            ),
            (
                "example.org",
                "spiffe://example.org/./b",
                "scope.spiffe.ids",
            ),
            (
                "example.org",
                "spiffe://example.org/a%2Fb",
                "scope.spiffe.ids",
            ),
            (
                "example.org",
                "spiffe://example.org/a?b",
                "scope.spiffe.ids",
            ),
            (
                "example.org",
                "spiffe://example.org.evil/a",
                "scope.spiffe.ids",
            ),
        ];
        for (trust_domain, id, field) in refused {
            let err = with(trust_domain, id).unwrap_err();
            assert_eq!(err.field, field, "{trust_domain} {id}: {err}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        assert!(with("example.org", &long).is_err());
        let twice = SpiffeScope {
            trust_domain: "t".into(),
            ids: vec!["spiffe://t/a".into(), "spiffe://t/a".into()],
        };
        assert!(twice.validate().unwrap_err().reason.contains("twice"));
        let none = SpiffeScope {
            trust_domain: "t".into(),
            ids: vec![],
        };
        assert!(none.validate().is_err());
    }

    #[test]
    fn oidc_scopes_need_an_https_issuer_and_bounded_claims() {
        let with = |issuer: &str, claims: &[(&str, &[&str])]| {
            OidcScope {
                issuer: issuer.into(),
                claims: claims
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                    .collect(),
            }
            .validate()
        };
        let good: &[(&str, &[&str])] = &[("sub", &["repo:octo/app:ref:refs/heads/main"])];
        with("https://issuer.example", good).unwrap();
        with("https://issuer.example:8443/tenant/v2", good).unwrap();
        for issuer in [
            "http://issuer.example",
            "issuer.example",
            "https://",
            "https://user@issuer.example",
            "https://issuer.example?x=1",
            "https://issuer.example#frag",
            "https://issuer.example:8443:443",
            "",
        ] {
            let err = with(issuer, good).unwrap_err();
            assert_eq!(err.field, "scope.oidc.issuer", "{issuer}");
        }
        let long = format!("https://issuer.example/{}", "a".repeat(MAX_ISSUER_LEN));
        assert!(with(&long, good).is_err());
        let claim_refusals: [&[(&str, &[&str])]; 5] = [
            &[],
            &[("sub", &[])],
            &[("", &["x"])],
            &[("sub", &["x", "x"])],
            &[("sub", &["line\nbreak"])],
        ];
        for claims in claim_refusals {
            let err = with("https://i.example", claims).unwrap_err();
            assert_eq!(err.field, "scope.oidc.claims", "{claims:?}");
        }
        let many: Vec<String> = (0..=MAX_LIST_LEN).map(|i| format!("v{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(with("https://i.example", &[("sub", &many)]).is_err());
    }

    #[test]
    fn a_claim_named_twice_is_refused() {
        let text = r#"{"oidc":{"issuer":"https://i.example","claims":{"sub":["a"],"sub":["b"]}}}"#;
        let err = serde_json::from_str::<Scope>(text).unwrap_err();
        assert!(err.to_string().contains("`sub` is given twice"), "{err}");
    }

    fn k8s<'a>(cluster: &'a str, namespace: &'a str, sa: &'a str) -> VerifiedIdentity<'a> {
        VerifiedIdentity::Kubernetes(KubernetesIdentity {
            cluster,
            namespace,
            service_account: sa,
        })
    }

    #[test]
    fn kubernetes_identities_match_cluster_namespace_and_service_account() {
        let scope = kubernetes();
        assert_eq!(check(&scope, &k8s("c1", "shop", "api")), Ok(()));
        assert_eq!(check(&scope, &k8s("c1", "shop", "worker")), Ok(()));
        for (identity, mismatch) in [
            (k8s("c2", "shop", "api"), ScopeMismatch::Cluster),
            (k8s("c1", "shop2", "api"), ScopeMismatch::Namespace),
            (k8s("c1", "shop", "default"), ScopeMismatch::ServiceAccount),
            (k8s("c1", "shop", "ap"), ScopeMismatch::ServiceAccount),
            (k8s("C1", "shop", "api"), ScopeMismatch::Cluster),
        ] {
            let err = check(&scope, &identity).unwrap_err();
            assert_eq!(err, mismatch);
            assert!(
                err.field().starts_with("scope.kubernetes."),
                "{}",
                err.field()
            );
        }
    }

    #[test]
    fn spiffe_identities_match_trust_domain_then_id() {
        let scope = spiffe();
        let id = |id| VerifiedIdentity::Spiffe(SpiffeIdentity { id });
        assert_eq!(check(&scope, &id("spiffe://example.org/web")), Ok(()));
        for (presented, mismatch) in [
            ("spiffe://example.org/web/admin", ScopeMismatch::SpiffeId),
            ("spiffe://example.org/WEB", ScopeMismatch::SpiffeId),
            ("spiffe://other.org/web", ScopeMismatch::TrustDomain),
            ("spiffe://example.org.evil/web", ScopeMismatch::TrustDomain),
            ("web", ScopeMismatch::TrustDomain),
        ] {
            assert_eq!(check(&scope, &id(presented)), Err(mismatch), "{presented}");
        }
    }

    #[test]
    fn oidc_identities_match_the_issuer_and_every_claim() {
        let scope = oidc();
        let claims = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let good = claims(&[
            ("repository", "octo/app"),
            ("ref", "refs/tags/v1"),
            ("x", "y"),
        ]);
        let token = |issuer, claims| VerifiedIdentity::Oidc(OidcIdentity { issuer, claims });
        let issuer = "https://token.actions.githubusercontent.com";
        assert_eq!(check(&scope, &token(issuer, &good)), Ok(()));
        assert_eq!(
            check(
                &scope,
                &token("https://token.actions.githubusercontent.com/", &good)
            ),
            Err(ScopeMismatch::Issuer)
        );
        let wrong_ref = claims(&[("repository", "octo/app"), ("ref", "refs/heads/dev")]);
        let missing_ref = claims(&[("repository", "octo/app")]);
        for presented in [&wrong_ref, &missing_ref] {
            assert_eq!(
                check(&scope, &token(issuer, presented)),
                Err(ScopeMismatch::Claim { name: "ref".into() })
            );
        }
    }

    #[test]
    fn an_identity_of_another_kind_is_a_kind_mismatch() {
        let svid = VerifiedIdentity::Spiffe(SpiffeIdentity {
            id: "spiffe://example.org/web",
        });
        assert_eq!(
            check(&kubernetes(), &svid),
            Err(ScopeMismatch::Kind {
                scope: ScopeKind::Kubernetes,
                identity: ScopeKind::Spiffe
            })
        );
        let err = check(&spiffe(), &k8s("c1", "shop", "api")).unwrap_err();
        assert_eq!(err.reason(), Reason::ScopeKindMismatch);
        assert_eq!(
            err.to_string(),
            "the capsule's scope is spiffe; the caller is a kubernetes identity"
        );
    }

    #[test]
    fn who_may_open_is_said_in_words() {
        assert_eq!(
            kubernetes().who_may_open(),
            "pods running as service account api or worker in namespace shop on cluster c1"
        );
        assert_eq!(
            spiffe().who_may_open(),
            "workloads holding the SPIFFE ID spiffe://example.org/ns/shop/sa/api or spiffe://example.org/web (trust domain example.org)"
        );
        assert_eq!(
            oidc().who_may_open(),
            "holders of a token issued by https://token.actions.githubusercontent.com whose claim ref is refs/heads/main or refs/tags/v1 and whose claim repository is octo/app"
        );
        assert_eq!(or_list(&["a".into(), "b".into(), "c".into()]), "a, b or c");
    }

    fn sealed_for(name: &str, key: Option<&str>) -> Scope {
        Scope::Kubernetes(KubernetesScope {
            cluster: "c1".into(),
            namespace: "shop".into(),
            service_accounts: vec!["api".into()],
            name: name.into(),
            key: key.map(str::to_owned),
        })
    }

    /// The pod side's check: a capsule opens only from the Secret and key
    /// its header names; one moved to another key, another Secret, or a
    /// header without a key or of another kind is refused, naming both.
    #[test]
    fn a_capsule_opens_only_from_the_secret_and_key_it_was_sealed_for() {
        let slot = SecretSlot::parse("db/password").unwrap();
        assert_eq!(slot.to_string(), "Secret db key password");
        assert_eq!(slot.check(&sealed_for("db", Some("password"))), Ok(()));

        let moved_key = slot.check(&sealed_for("db", Some("username"))).unwrap_err();
        assert_eq!(
            moved_key.to_string(),
            "the capsule found in Secret db key password was sealed for Secret db key username: refused, a capsule moved to another Secret or key is never opened"
        );
        let moved_secret = SecretSlot::parse("api-url/url")
            .unwrap()
            .check(&sealed_for("db", Some("url")))
            .unwrap_err();
        assert_eq!(
            moved_secret.found_in,
            SecretSlot::new("api-url", "url").unwrap()
        );
        assert_eq!(
            moved_secret.sealed_for,
            Some(("db".to_owned(), Some("url".to_owned())))
        );
        assert!(
            moved_secret
                .to_string()
                .contains("found in Secret api-url key url was sealed for Secret db key url"),
            "{moved_secret}"
        );
        let keyless = slot.check(&sealed_for("db", None)).unwrap_err();
        assert!(
            keyless
                .to_string()
                .contains("sealed for Secret db without a key"),
            "{keyless}"
        );
        let other_kind = slot.check(&spiffe()).unwrap_err();
        assert_eq!(other_kind.sealed_for, None);
        // Comparisons are exact: no prefix, no case folding.
        assert!(
            SecretSlot::parse("db/Password")
                .unwrap()
                .check(&sealed_for("db", Some("password")))
                .is_err()
        );
        assert!(
            SecretSlot::parse("d/password")
                .unwrap()
                .check(&sealed_for("db", Some("password")))
                .is_err()
        );
    }

    #[test]
    fn a_secret_slot_is_checked_against_kubernetes_names() {
        for bad in [
            "db",
            "/password",
            "db/",
            "DB/password",
            "db/pass/word",
            "db/..",
        ] {
            assert!(SecretSlot::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SecretSlot::parse("db").unwrap_err().to_string(),
            "`db` is not SECRET/KEY"
        );
        assert!(SecretSlot::parse("tls.example/tls.key").is_ok());
    }
}
