-- podseal storage, version 4. The audit log becomes an RFC 9162 Merkle
-- tree: each row keeps its record's exact bytes and its leaf hash
-- (SHA-256(0x00 || entry)) instead of a chain hash, and one row keeps the
-- tree's frontier (the roots of its perfect subtrees, 32 bytes each), which
-- every append updates in its own transaction. Checkpoints are C2SP signed
-- notes over the tree's root. The chain's checkpoints are kept, unchanged,
-- in audit_chain_checkpoints: the upgrade checks the stored rows against
-- them, and a starting server checks its key against the latest until it
-- has signed the first Merkle checkpoint. The rows are re-hashed and the
-- frontier written by the engine right after this script, in the same
-- transaction (SQLite has no SHA-256 function).
ALTER TABLE audit_checkpoints RENAME TO audit_chain_checkpoints;

CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL              -- the signed note, as signed
);

CREATE TABLE audit_frontier (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    size  INTEGER NOT NULL,
    nodes BLOB NOT NULL
);

ALTER TABLE audit_log RENAME COLUMN hash TO leaf_hash;
