-- podseal storage, version 5 (PostgreSQL). A DPoP key is pinned to one
-- running instance of one container of a pod, not to the whole pod: a
-- restarted container (a new containerID) enrols its new process's key,
-- two containers of one pod each enrol their own, and a second key for an
-- instance that still runs is refused as before.
--
-- Pins made before keep container '' and cover the whole pod until they
-- expire or the pod goes, as they did when they were made. Sessions made
-- before keep container '' and container_id '': they are bound to the pod
-- only and end at their expiry or with the pod.
ALTER TABLE dpop_pins ADD COLUMN container TEXT NOT NULL DEFAULT '';
ALTER TABLE dpop_pins ADD COLUMN container_id TEXT NOT NULL DEFAULT '';
ALTER TABLE dpop_pins DROP CONSTRAINT dpop_pins_pkey;
ALTER TABLE dpop_pins ADD PRIMARY KEY (cluster, pod_uid, container);

ALTER TABLE sessions ADD COLUMN container TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN container_id TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_by_container ON sessions (cluster, pod_uid, container);
