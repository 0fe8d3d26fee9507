//! PostgreSQL: the release path: API keys and policies read, sessions, DPoP pins and replay records, container instances (`ReleaseStore`).

use super::*;

impl ReleaseStore for PostgresStorage {
    async fn server_secret(
        &self,
        name: &str,
        candidate: [u8; 32],
    ) -> Result<[u8; 32], StorageError> {
        let key = format!("secret:{name}");
        // One statement: insert unless present, and return what is stored.
        let rows = self
            .query(
                "read server secret",
                "WITH inserted AS (
                     INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value
                 )
                 SELECT value FROM inserted UNION ALL SELECT value FROM meta WHERE key = $1",
                &[&key, &candidate.to_vec()],
            )
            .await?;
        let row = rows.first().ok_or(StorageError::Corrupt("server secret"))?;
        hash32(row.get(0))
    }

    async fn pin_dpop_key(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        jkt: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<PinOutcome, StorageError> {
        let error = db_error("pin DPoP key");
        let ContainerInstance {
            pod_uid,
            container,
            container_id,
        } = instance;
        let mut client = self.client("pin DPoP key").await?;
        let tx = client.transaction().await.map_err(&error)?;
        // A pod-wide pin made before version 5 (none are made any more).
        let pod_wide = tx
            .query_opt(
                "SELECT jkt FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2 AND container = '' AND expires_at > $3",
                &[&cluster, pod_uid, &now],
            )
            .await
            .map_err(&error)?;
        if pod_wide.is_some_and(|row| row.get::<_, String>(0) != jkt) {
            return Ok(PinOutcome::OtherKeyPinned);
        }
        let inserted = tx
            .execute(
                "INSERT INTO dpop_pins (cluster, pod_uid, container, container_id, jkt, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (cluster, pod_uid, container) DO NOTHING",
                &[&cluster, pod_uid, container, container_id, &jkt, &expires_at],
            )
            .await
            .map_err(&error)?;
        let outcome = if inserted == 1 {
            PinOutcome::Pinned
        } else {
            // The row exists: lock it and decide.
            let row = tx
                .query_one(
                    "SELECT jkt, container_id, expires_at FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2 AND container = $3 FOR UPDATE",
                    &[&cluster, pod_uid, container],
                )
                .await
                .map_err(&error)?;
            let (pinned, pinned_id, until): (String, String, i64) =
                (row.get(0), row.get(1), row.get(2));
            let live = until > now;
            if live && pinned_id == *container_id {
                if pinned != jkt {
                    return Ok(PinOutcome::OtherKeyPinned);
                }
                tx.execute(
                    "UPDATE dpop_pins SET expires_at = GREATEST(expires_at, $4) WHERE cluster = $1 AND pod_uid = $2 AND container = $3",
                    &[&cluster, pod_uid, container, &expires_at],
                )
                .await
                .map_err(&error)?;
                PinOutcome::AlreadyPinned
            } else {
                let revoked = tx
                    .execute(
                        "UPDATE sessions SET revoked_at = $5 WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND container_id <> $4 AND revoked_at IS NULL",
                        &[&cluster, pod_uid, container, container_id, &now],
                    )
                    .await
                    .map_err(&error)?;
                tx.execute(
                    "UPDATE dpop_pins SET jkt = $5, container_id = $4, expires_at = $6 WHERE cluster = $1 AND pod_uid = $2 AND container = $3",
                    &[&cluster, pod_uid, container, container_id, &jkt, &expires_at],
                )
                .await
                .map_err(&error)?;
                if live {
                    PinOutcome::Replaced {
                        old_jkt: pinned,
                        old_container_id: pinned_id,
                        sessions_revoked: revoked,
                    }
                } else {
                    PinOutcome::Pinned
                }
            }
        };
        tx.commit().await.map_err(&error)?;
        Ok(outcome)
    }

    async fn rotate_pin(
        &self,
        cluster: &str,
        pod_uid: &str,
        container: &str,
        old_jkt: &str,
        new_jkt: &str,
    ) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "rotate DPoP pin",
                "UPDATE dpop_pins SET jkt = $5 WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND jkt = $4",
                &[&cluster, &pod_uid, &container, &old_jkt, &new_jkt],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn forget_pod(
        &self,
        cluster: &str,
        pod_uid: &str,
        now: i64,
    ) -> Result<u64, StorageError> {
        let error = db_error("forget pod");
        let mut client = self.client("forget pod").await?;
        let tx = client.transaction().await.map_err(&error)?;
        tx.execute(
            "DELETE FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2",
            &[&cluster, &pod_uid],
        )
        .await
        .map_err(&error)?;
        let revoked = tx
            .execute(
                "UPDATE sessions SET revoked_at = $3 WHERE cluster = $1 AND pod_uid = $2 AND revoked_at IS NULL",
                &[&cluster, &pod_uid, &now],
            )
            .await
            .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok(revoked)
    }

    async fn forget_container(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        now: i64,
    ) -> Result<(u64, bool), StorageError> {
        let error = db_error("forget container");
        let ContainerInstance {
            pod_uid,
            container,
            container_id,
        } = instance;
        let mut client = self.client("forget container").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let unpinned = tx
            .execute(
                "DELETE FROM dpop_pins WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND container_id = $4",
                &[&cluster, pod_uid, container, container_id],
            )
            .await
            .map_err(&error)?;
        let revoked = tx
            .execute(
                "UPDATE sessions SET revoked_at = $5 WHERE cluster = $1 AND pod_uid = $2 AND container = $3 AND container_id = $4 AND revoked_at IS NULL",
                &[&cluster, pod_uid, container, container_id, &now],
            )
            .await
            .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok((revoked, unpinned > 0))
    }

    async fn insert_session(&self, session: SessionRecord) -> Result<(), StorageError> {
        self.execute(
            "insert session",
            &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
            &[
                &crate::storage::session_id_hash(&session.id).as_slice(),
                &session.cluster,
                &session.namespace,
                &session.service_account,
                &session.pod_name,
                &session.pod_uid,
                &session.jkt,
                &session.recipient_key,
                &session.api_key_id,
                &session.created_at,
                &session.expires_at,
                &session.revoked_at,
                &session.container,
                &session.container_id,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        let rows = self
            .query(
                "read session",
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"),
                &[&crate::storage::session_id_hash(id).as_slice()],
            )
            .await?;
        Ok(rows.first().map(|row| session_at(row, 0, id)))
    }

    async fn set_session_jkt(&self, id: &str, jkt: &str) -> Result<(), StorageError> {
        self.execute(
            "update session key",
            "UPDATE sessions SET jkt = $2 WHERE id_hash = $1",
            &[&crate::storage::session_id_hash(id).as_slice(), &jkt],
        )
        .await
        .map(|_| ())
    }

    async fn record_jti(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "record jti",
                "INSERT INTO dpop_jti (jkt, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jkt, jti) DO NOTHING",
                &[&jkt, &jti, &expires_at],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        let error = db_error("purge expired");
        let mut client = self.client("purge expired").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM dpop_jti WHERE expires_at <= $1",
            "DELETE FROM dpop_pins WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
        ] {
            removed += tx.execute(sql, &[&now]).await.map_err(&error)?;
        }
        tx.commit().await.map_err(&error)?;
        Ok(removed)
    }

    async fn request_context(
        &self,
        api_key_hash: [u8; 32],
        session_id: Option<&str>,
    ) -> Result<RequestContext, StorageError> {
        let session_hash = session_id.map(crate::storage::session_id_hash);
        let rows = self
            .query(
                "read request context",
                &crate::storage::request_context_sql('$'),
                &[
                    &api_key_hash.as_slice(),
                    &session_hash.as_ref().map(|h| h.as_slice()),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or(StorageError::Corrupt("request context"))?;
        let present = |base: usize| row.get::<_, Option<String>>(base).is_some();
        let session_present = row
            .get::<_, Option<Vec<u8>>>(crate::storage::CONTEXT_SESSION)
            .is_some();
        Ok(RequestContext {
            api_key: present(0).then(|| api_key_at(row, 0)).transpose()?,
            policy: present(crate::storage::CONTEXT_POLICY)
                .then(|| policy_at(row, crate::storage::CONTEXT_POLICY))
                .transpose()?,
            session: session_id
                .filter(|_| session_present)
                .map(|id| session_at(row, crate::storage::CONTEXT_SESSION, id)),
        })
    }
}
