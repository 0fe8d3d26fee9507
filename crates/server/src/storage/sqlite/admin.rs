//! SQLite: the admin service: clusters, API keys, policies, the admin token (`AdminStore`).

use super::*;

impl AdminStore for SqliteStorage {
    async fn init_admin_token(&self, hash: [u8; 32]) -> Result<bool, StorageError> {
        self.run("init admin token", move |c| {
            let inserted = c.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![ADMIN_TOKEN_KEY, hash.to_vec()],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>, StorageError> {
        self.run("read admin token", |c| {
            let value: Option<Vec<u8>> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [ADMIN_TOKEN_KEY],
                    |row| row.get(0),
                )
                .optional()?;
            value.map(hash32).transpose()
        })
        .await
    }

    async fn put_cluster(&self, cluster: ClusterRecord) -> Result<(), StorageError> {
        self.run("put cluster", move |c| {
            c.execute(
                &format!(
                    "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (name) DO UPDATE SET issuer = excluded.issuer, audiences = excluded.audiences,
                       api_server_url = excluded.api_server_url,
                       reader_token = excluded.reader_token, jwks = excluded.jwks, updated_at = excluded.updated_at,
                       ca_pem = excluded.ca_pem, allow_extra_audiences = excluded.allow_extra_audiences,
                       max_token_lifetime_secs = excluded.max_token_lifetime_secs"
                ),
                params![
                    cluster.name,
                    cluster.issuer,
                    to_json(&cluster.audiences)?,
                    cluster.api_server_url,
                    cluster.reader_token.expose_secret(),
                    cluster.jwks,
                    cluster.created_at,
                    cluster.updated_at,
                    cluster.ca_pem,
                    cluster.allow_extra_audiences,
                    cluster.max_token_lifetime_secs
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_cluster(&self, name: &str) -> Result<RemovedCluster, StorageError> {
        let name = name.to_owned();
        let removed = self
            .run("remove cluster", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &name)? {
                    return Ok(None);
                }
                let api_keys = tx.execute("DELETE FROM api_keys WHERE cluster = ?1", [&name])?;
                let policies = tx.execute("DELETE FROM policies WHERE cluster = ?1", [&name])?;
                let sessions = tx.execute("DELETE FROM sessions WHERE cluster = ?1", [&name])?;
                tx.execute("DELETE FROM dpop_pins WHERE cluster = ?1", [&name])?;
                tx.execute("DELETE FROM clusters WHERE name = ?1", [&name])?;
                tx.commit()?;
                Ok(Some(RemovedCluster {
                    api_keys: api_keys as u64,
                    policies: policies as u64,
                    sessions: sessions as u64,
                }))
            })
            .await?;
        removed.ok_or_else(|| StorageError::NotFound("the cluster is not registered".into()))
    }

    async fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StorageError> {
        let name = name.to_owned();
        self.run("read cluster", move |c| {
            c.query_row(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
                [name],
                cluster_from,
            )
            .optional()
        })
        .await
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>, StorageError> {
        self.run("list clusters", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"
            ))?;
            statement.query_map([], cluster_from)?.collect()
        })
        .await
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<(), StorageError> {
        let cluster = key.cluster.clone();
        let inserted = self
            .run("insert API key", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &key.cluster)? {
                    return Ok(false);
                }
                tx.execute(
                    &format!("INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                    params![key.id, key.key_hash.to_vec(), key.cluster, key.namespace, key.service_account, key.created_at, key.revoked_at],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if inserted {
            Ok(())
        } else {
            Err(StorageError::NotFound(format!(
                "cluster {cluster} is not registered"
            )))
        }
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError> {
        self.run("list API keys", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))?;
            statement.query_map([], api_key_from)?.collect()
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        let id = id.to_owned();
        self.run("revoke API key", move |c| {
            Ok(c.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )? == 1)
        })
        .await
    }

    async fn set_policy(&self, policy: PolicyRecord) -> Result<(), StorageError> {
        let cluster = policy.cluster.clone();
        let stored = self
            .run("set policy", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &policy.cluster)? {
                    return Ok(false);
                }
                tx.execute(
                    &format!(
                        "INSERT INTO policies ({POLICY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests,
                           audit_mode = excluded.audit_mode, require_nonce = excluded.require_nonce, updated_at = excluded.updated_at"
                    ),
                    params![
                        policy.cluster,
                        policy.namespace,
                        policy.service_account,
                        to_json(&policy.digests)?,
                        policy.audit_mode,
                        policy.require_nonce,
                        policy.updated_at
                    ],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if stored {
            Ok(())
        } else {
            Err(StorageError::NotFound(format!(
                "cluster {cluster} is not registered"
            )))
        }
    }

    async fn change_policy_digests(
        &self,
        change: DigestChange,
        now: i64,
    ) -> Result<PolicyRecord, StorageError> {
        let outcome = self
            .run("change policy digests", move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if missing_cluster(&tx, &change.cluster)? {
                    return Ok(Err(format!("cluster {} is not registered", change.cluster)));
                }
                let current = tx
                    .query_row(
                        &format!("SELECT {POLICY_COLUMNS} FROM policies WHERE cluster = ?1 AND namespace = ?2 AND service_account = ?3"),
                        params![change.cluster, change.namespace, change.service_account],
                        policy_from,
                    )
                    .optional()?;
                let policy = match change.applied_to(current, now) {
                    Ok(policy) => policy,
                    Err(missing) => return Ok(Err(missing.to_string())),
                };
                tx.execute(
                    &format!(
                        "INSERT INTO policies ({POLICY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests, updated_at = excluded.updated_at"
                    ),
                    params![
                        policy.cluster,
                        policy.namespace,
                        policy.service_account,
                        to_json(&policy.digests)?,
                        policy.audit_mode,
                        policy.require_nonce,
                        policy.updated_at
                    ],
                )?;
                tx.commit()?;
                Ok(Ok(policy))
            })
            .await?;
        outcome.map_err(StorageError::NotFound)
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>, StorageError> {
        self.run("list policies", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {POLICY_COLUMNS} FROM policies ORDER BY cluster, namespace, service_account"
            ))?;
            statement.query_map([], policy_from)?.collect()
        })
        .await
    }
}
