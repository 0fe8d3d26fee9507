-- podseal storage, version 3. A session id is a bearer secret (the pod's
-- DPoP access token), so only its SHA-256 is stored, as for API keys; a
-- presented id is looked up by its hash. Sessions stored before held their
-- ids in clear, so they are dropped rather than carried over: an id that
-- sat in a database file or a backup is treated as exposed. Their pods open
-- new sessions (the SDK follows one `session_unknown`); DPoP pins stay.
DROP TABLE sessions;

CREATE TABLE sessions (
    id_hash         BLOB PRIMARY KEY,  -- SHA-256 of the session id
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
