-- podseal storage, version 2. A cluster's CA certificates are pinned at
-- registration (their PEM bytes), as its JWKS is, instead of being read from
-- a path; and its token rules are stored with it. A registration made under
-- version 1 has no pinned CA (empty): it is not connected, and says so,
-- until it is registered again with `podseal cluster add --replace`.
ALTER TABLE clusters ADD COLUMN ca_pem TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN allow_extra_audiences INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN max_token_lifetime_secs INTEGER NOT NULL DEFAULT 86400;
