-- podseal storage, version 1. Every table that decides a release lives here,
-- never only in one process's memory.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE clusters (
    name           TEXT PRIMARY KEY,
    issuer         TEXT NOT NULL,
    audiences      TEXT NOT NULL,   -- JSON array
    api_server_url TEXT NOT NULL,
    ca_bundle      TEXT NOT NULL,   -- path of the PEM file
    token_file     TEXT NOT NULL,
    jwks           TEXT NOT NULL,   -- the pinned JWKS, JSON
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    key_hash        BLOB NOT NULL UNIQUE,
    cluster         TEXT NOT NULL REFERENCES clusters(name),
    namespace       TEXT NOT NULL,
    service_account TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);

CREATE TABLE policies (
    cluster         TEXT NOT NULL REFERENCES clusters(name),
    namespace       TEXT NOT NULL,
    service_account TEXT NOT NULL,
    digests         TEXT NOT NULL,  -- JSON array of sha256:<hex>
    audit_mode      INTEGER NOT NULL DEFAULT 0,
    require_nonce   INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (cluster, namespace, service_account)
);

-- One DPoP key per live pod uid.
CREATE TABLE dpop_pins (
    cluster    TEXT NOT NULL,
    pod_uid    TEXT NOT NULL,
    jkt        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (cluster, pod_uid)
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    cluster         TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    service_account TEXT NOT NULL,
    pod_name        TEXT NOT NULL,
    pod_uid         TEXT NOT NULL,
    jkt             TEXT NOT NULL,
    recipient_key   BLOB NOT NULL,
    api_key_id      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE INDEX sessions_by_pod ON sessions (cluster, pod_uid);

-- Replay records of DPoP proofs, keyed on (key thumbprint, jti).
CREATE TABLE dpop_jti (
    jkt        TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (jkt, jti)
);
CREATE INDEX dpop_jti_by_expiry ON dpop_jti (expires_at);

-- The hash-chained audit log: exact record bytes and the chain hash after them.
CREATE TABLE audit_log (
    seq   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    hash  BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    checkpoint TEXT NOT NULL        -- JSON
);
