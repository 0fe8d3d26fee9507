-- podseal storage, version 5. A DPoP key is pinned to one running instance
-- of one container of a pod, not to the whole pod: a restarted container
-- (a new containerID) enrols its new process's key, two containers of one
-- pod each enrol their own, and a second key for an instance that still
-- runs is refused as before.
--
-- Pins made before keep container '' and cover the whole pod until they
-- expire or the pod goes, as they did when they were made. Sessions made
-- before keep container '' and container_id '': they are bound to the pod
-- only and end at their expiry or with the pod.
ALTER TABLE dpop_pins RENAME TO dpop_pins_v4;

CREATE TABLE dpop_pins (
    cluster      TEXT NOT NULL,
    pod_uid      TEXT NOT NULL,
    container    TEXT NOT NULL,  -- '': a pod-wide pin made before version 5
    container_id TEXT NOT NULL,  -- the instance the key was pinned in
    jkt          TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (cluster, pod_uid, container)
);

INSERT INTO dpop_pins (cluster, pod_uid, container, container_id, jkt, expires_at)
    SELECT cluster, pod_uid, '', '', jkt, expires_at FROM dpop_pins_v4;

DROP TABLE dpop_pins_v4;

ALTER TABLE sessions ADD COLUMN container TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN container_id TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_by_container ON sessions (cluster, pod_uid, container);
