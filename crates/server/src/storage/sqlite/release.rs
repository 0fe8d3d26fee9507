//! SQLite: the release path: API keys and policies read, sessions, DPoP pins and replay records, container instances (`ReleaseStore`).

use super::*;

impl ReleaseStore for SqliteStorage {
    async fn server_secret(
        &self,
        name: &str,
        candidate: [u8; 32],
    ) -> Result<[u8; 32], StorageError> {
        let key = format!("secret:{name}");
        self.run("read server secret", move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, candidate.to_vec()],
            )?;
            let value: Vec<u8> =
                tx.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |row| {
                    row.get(0)
                })?;
            tx.commit()?;
            hash32(value)
        })
        .await
    }

    async fn pin_dpop_key(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        jkt: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<PinOutcome, StorageError> {
        let (cluster, instance, jkt) = (cluster.to_owned(), instance.clone(), jkt.to_owned());
        self.run("pin DPoP key", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ContainerInstance { pod_uid, container, container_id } = &instance;
            let pod_wide: Option<String> = tx
                .query_row(
                    "SELECT jkt FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2 AND container = '' AND expires_at > ?3",
                    params![cluster, pod_uid, now],
                    |row| row.get(0),
                )
                .optional()?;
            if pod_wide.is_some_and(|pinned| pinned != jkt) {
                return Ok(PinOutcome::OtherKeyPinned);
            }
            let existing: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT jkt, container_id, expires_at FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3",
                    params![cluster, pod_uid, container],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let outcome = match existing {
                Some((pinned, id, until)) if until > now && id == *container_id => {
                    if pinned != jkt {
                        return Ok(PinOutcome::OtherKeyPinned);
                    }
                    tx.execute(
                        "UPDATE dpop_pins SET expires_at = MAX(expires_at, ?4) WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3",
                        params![cluster, pod_uid, container, expires_at],
                    )?;
                    PinOutcome::AlreadyPinned
                }
                existing => {
                    let revoked = tx.execute(
                        "UPDATE sessions SET revoked_at = ?5 WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND container_id != ?4 AND revoked_at IS NULL",
                        params![cluster, pod_uid, container, container_id, now],
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO dpop_pins (cluster, pod_uid, container, container_id, jkt, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![cluster, pod_uid, container, container_id, jkt, expires_at],
                    )?;
                    match existing {
                        Some((old_jkt, old_container_id, until)) if until > now => PinOutcome::Replaced {
                            old_jkt,
                            old_container_id,
                            sessions_revoked: revoked as u64,
                        },
                        _ => PinOutcome::Pinned,
                    }
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn rotate_pin(
        &self,
        cluster: &str,
        pod_uid: &str,
        container: &str,
        old_jkt: &str,
        new_jkt: &str,
    ) -> Result<bool, StorageError> {
        let args = (
            cluster.to_owned(),
            pod_uid.to_owned(),
            container.to_owned(),
            old_jkt.to_owned(),
            new_jkt.to_owned(),
        );
        self.run("rotate DPoP pin", move |c| {
            let changed = c.execute(
                "UPDATE dpop_pins SET jkt = ?5 WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND jkt = ?4",
                params![args.0, args.1, args.2, args.3, args.4],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn forget_pod(
        &self,
        cluster: &str,
        pod_uid: &str,
        now: i64,
    ) -> Result<u64, StorageError> {
        let (cluster, pod_uid) = (cluster.to_owned(), pod_uid.to_owned());
        self.run("forget pod", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2", params![cluster, pod_uid])?;
            let revoked = tx.execute(
                "UPDATE sessions SET revoked_at = ?3 WHERE cluster = ?1 AND pod_uid = ?2 AND revoked_at IS NULL",
                params![cluster, pod_uid, now],
            )?;
            tx.commit()?;
            Ok(revoked as u64)
        })
        .await
    }

    async fn forget_container(
        &self,
        cluster: &str,
        instance: &ContainerInstance,
        now: i64,
    ) -> Result<(u64, bool), StorageError> {
        let (cluster, instance) = (cluster.to_owned(), instance.clone());
        self.run("forget container", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ContainerInstance { pod_uid, container, container_id } = &instance;
            let unpinned = tx.execute(
                "DELETE FROM dpop_pins WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND container_id = ?4",
                params![cluster, pod_uid, container, container_id],
            )?;
            let revoked = tx.execute(
                "UPDATE sessions SET revoked_at = ?5 WHERE cluster = ?1 AND pod_uid = ?2 AND container = ?3 AND container_id = ?4 AND revoked_at IS NULL",
                params![cluster, pod_uid, container, container_id, now],
            )?;
            tx.commit()?;
            Ok((revoked as u64, unpinned > 0))
        })
        .await
    }

    async fn insert_session(&self, session: SessionRecord) -> Result<(), StorageError> {
        self.run("insert session", move |c| {
            c.execute(
                &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    crate::storage::session_id_hash(&session.id).to_vec(),
                    session.cluster,
                    session.namespace,
                    session.service_account,
                    session.pod_name,
                    session.pod_uid,
                    session.jkt,
                    session.recipient_key,
                    session.api_key_id,
                    session.created_at,
                    session.expires_at,
                    session.revoked_at,
                    session.container,
                    session.container_id
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        let id = id.to_owned();
        self.run("read session", move |c| {
            c.query_row(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?1"),
                [crate::storage::session_id_hash(&id).to_vec()],
                |row| session_at(row, 0, &id),
            )
            .optional()
        })
        .await
    }

    async fn set_session_jkt(&self, id: &str, jkt: &str) -> Result<(), StorageError> {
        let (hash, jkt) = (crate::storage::session_id_hash(id), jkt.to_owned());
        self.run("update session key", move |c| {
            c.execute(
                "UPDATE sessions SET jkt = ?2 WHERE id_hash = ?1",
                params![hash.to_vec(), jkt],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_jti(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        let (jkt, jti) = (jkt.to_owned(), jti.to_owned());
        self.run("record jti", move |c| {
            Ok(c.execute(
                "INSERT OR IGNORE INTO dpop_jti (jkt, jti, expires_at) VALUES (?1, ?2, ?3)",
                params![jkt, jti, expires_at],
            )? == 1)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        self.run("purge expired", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut removed = tx.execute("DELETE FROM dpop_jti WHERE expires_at <= ?1", [now])?;
            removed += tx.execute("DELETE FROM dpop_pins WHERE expires_at <= ?1", [now])?;
            removed += tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
            tx.commit()?;
            // Once a minute (the purge's interval) the WAL gives its space back.
            truncate_wal(c);
            Ok(removed as u64)
        })
        .await
    }

    async fn request_context(
        &self,
        api_key_hash: [u8; 32],
        session_id: Option<&str>,
    ) -> Result<RequestContext, StorageError> {
        let session_id = session_id.map(str::to_owned);
        self.read("read request context", move |c| {
            let mut statement = c.prepare_cached(&crate::storage::request_context_sql('?'))?;
            let session_hash = session_id
                .as_deref()
                .map(|id| crate::storage::session_id_hash(id).to_vec());
            statement.query_row(params![api_key_hash.to_vec(), session_hash], |row| {
                let present = |base: usize| {
                    row.get_ref(base)
                        .map(|v| v != rusqlite::types::ValueRef::Null)
                };
                Ok(RequestContext {
                    api_key: if present(0)? {
                        Some(api_key_at(row, 0)?)
                    } else {
                        None
                    },
                    policy: if present(crate::storage::CONTEXT_POLICY)? {
                        Some(policy_at(row, crate::storage::CONTEXT_POLICY)?)
                    } else {
                        None
                    },
                    session: match (&session_id, present(crate::storage::CONTEXT_SESSION)?) {
                        (Some(id), true) => {
                            Some(session_at(row, crate::storage::CONTEXT_SESSION, id)?)
                        }
                        _ => None,
                    },
                })
            })
        })
        .await
    }
}
