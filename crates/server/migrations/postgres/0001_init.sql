-- podseal storage, version 1 (PostgreSQL). The same tables as the SQLite
-- engine; every decision that must hold across replicas is a constraint or
-- a single transaction here.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE clusters (
    name           TEXT PRIMARY KEY,
    issuer         TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    api_server_url TEXT NOT NULL,
    ca_bundle      TEXT NOT NULL,
    token_file     TEXT NOT NULL,
    jwks           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    key_hash        BYTEA NOT NULL UNIQUE,
    cluster         TEXT NOT NULL REFERENCES clusters(name),
    namespace       TEXT NOT NULL,
    service_account TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);

CREATE TABLE policies (
    cluster         TEXT NOT NULL REFERENCES clusters(name),
    namespace       TEXT NOT NULL,
    service_account TEXT NOT NULL,
    digests         TEXT NOT NULL,
    audit_mode      BOOLEAN NOT NULL DEFAULT FALSE,
    require_nonce   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (cluster, namespace, service_account)
);

CREATE TABLE dpop_pins (
    cluster    TEXT NOT NULL,
    pod_uid    TEXT NOT NULL,
    jkt        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
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
    recipient_key   BYTEA NOT NULL,
    api_key_id      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX sessions_by_pod ON sessions (cluster, pod_uid);

CREATE TABLE dpop_jti (
    jkt        TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (jkt, jti)
);
CREATE INDEX dpop_jti_by_expiry ON dpop_jti (expires_at);

CREATE TABLE audit_log (
    seq   BIGINT PRIMARY KEY,
    entry BYTEA NOT NULL,
    hash  BYTEA NOT NULL
);

CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    checkpoint TEXT NOT NULL
);
