-- podseal storage, version 6. A cluster's reader token is uploaded with
-- its registration and stored here, as its CA is pinned: the server no
-- longer reads a token file, or a CA bundle, at a path named by an admin
-- request (which let an admin token make the server read any file it can
-- and send the file's content, as a bearer token, to an API server URL of
-- the same request's choosing). The two path columns go with it.
--
-- A registration made before has no token (empty): it is not connected,
-- and says why, until it is registered again with
-- `podseal cluster add NAME … --token-file FILE --replace` (docs/design.md,
-- "The admin API reads no file").
ALTER TABLE clusters ADD COLUMN reader_token TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters DROP COLUMN ca_bundle;
ALTER TABLE clusters DROP COLUMN token_file;
