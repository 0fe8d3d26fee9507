//! PostgreSQL: the admin service: clusters, API keys, policies, the admin token (`AdminStore`).

use super::*;

impl AdminStore for PostgresStorage {
    async fn init_admin_token(&self, hash: [u8; 32]) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "init admin token",
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&ADMIN_TOKEN_KEY, &hash.to_vec()],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn admin_token_hash(&self) -> Result<Option<[u8; 32]>, StorageError> {
        let rows = self
            .query(
                "read admin token",
                "SELECT value FROM meta WHERE key = $1",
                &[&ADMIN_TOKEN_KEY],
            )
            .await?;
        rows.first().map(|row| hash32(row.get(0))).transpose()
    }

    async fn put_cluster(&self, cluster: ClusterRecord) -> Result<(), StorageError> {
        self.execute(
            "put cluster",
            &format!(
                "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (name) DO UPDATE SET issuer = excluded.issuer, audiences = excluded.audiences,
                   api_server_url = excluded.api_server_url,
                   reader_token = excluded.reader_token, jwks = excluded.jwks, updated_at = excluded.updated_at,
                   ca_pem = excluded.ca_pem, allow_extra_audiences = excluded.allow_extra_audiences,
                   max_token_lifetime_secs = excluded.max_token_lifetime_secs"
            ),
            &[
                &cluster.name,
                &cluster.issuer,
                &to_json(&cluster.audiences),
                &cluster.api_server_url,
                &cluster.reader_token.expose_secret(),
                &cluster.jwks,
                &cluster.created_at,
                &cluster.updated_at,
                &cluster.ca_pem,
                &cluster.allow_extra_audiences,
                &cluster.max_token_lifetime_secs,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, StorageError> {
        let rows = self
            .query(
                "read cluster",
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = $1"),
                &[&name],
            )
            .await?;
        rows.first().map(cluster_from).transpose()
    }

    async fn remove_cluster(&self, name: &str) -> Result<RemovedCluster, StorageError> {
        let error = db_error("remove cluster");
        let mut client = self.client("remove cluster").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let found = tx
            .query_opt(
                "SELECT 1 FROM clusters WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(&error)?;
        if found.is_none() {
            return Err(StorageError::NotFound(
                "the cluster is not registered".into(),
            ));
        }
        let mut counts = [0u64; 3];
        for (count, sql) in counts.iter_mut().zip([
            "DELETE FROM api_keys WHERE cluster = $1",
            "DELETE FROM policies WHERE cluster = $1",
            "DELETE FROM sessions WHERE cluster = $1",
        ]) {
            *count = tx.execute(sql, &[&name]).await.map_err(&error)?;
        }
        for sql in [
            "DELETE FROM dpop_pins WHERE cluster = $1",
            "DELETE FROM clusters WHERE name = $1",
        ] {
            tx.execute(sql, &[&name]).await.map_err(&error)?;
        }
        tx.commit().await.map_err(&error)?;
        let [api_keys, policies, sessions] = counts;
        let removed = RemovedCluster {
            api_keys,
            policies,
            sessions,
        };
        Ok(removed)
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>, StorageError> {
        let rows = self
            .query(
                "list clusters",
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(cluster_from).collect()
    }

    async fn insert_api_key(&self, key: ApiKeyRecord) -> Result<(), StorageError> {
        self.with_cluster(
            "insert API key",
            &key.cluster,
            &format!(
                "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &key.id,
                &key.key_hash.to_vec(),
                &key.cluster,
                &key.namespace,
                &key.service_account,
                &key.created_at,
                &key.revoked_at,
            ],
        )
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError> {
        let rows = self
            .query(
                "list API keys",
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                &[],
            )
            .await?;
        rows.iter().map(api_key_from).collect()
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        let changed = self
            .execute(
                "revoke API key",
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn set_policy(&self, policy: PolicyRecord) -> Result<(), StorageError> {
        self.with_cluster(
            "set policy",
            &policy.cluster,
            &format!(
                "INSERT INTO policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests,
                   audit_mode = excluded.audit_mode, require_nonce = excluded.require_nonce, updated_at = excluded.updated_at"
            ),
            &[
                &policy.cluster,
                &policy.namespace,
                &policy.service_account,
                &to_json(&policy.digests),
                &policy.audit_mode,
                &policy.require_nonce,
                &policy.updated_at,
            ],
        )
        .await
    }

    async fn change_policy_digests(
        &self,
        change: DigestChange,
        now: i64,
    ) -> Result<PolicyRecord, StorageError> {
        let error = db_error("change policy digests");
        let mut client = self.client("change policy digests").await?;
        let tx = client.transaction().await.map_err(&error)?;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&change.cluster, &change.namespace, &change.service_account];
        let cluster = tx
            .query_opt("SELECT 1 FROM clusters WHERE name = $1", &[&change.cluster])
            .await
            .map_err(&error)?;
        if cluster.is_none() {
            return Err(StorageError::NotFound(format!(
                "cluster {} is not registered",
                change.cluster
            )));
        }
        if !change.add.is_empty() {
            // A row to lock, also for the first change: two first additions
            // at once then queue on it instead of both inserting.
            tx.execute(
                &format!(
                    "INSERT INTO policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, '[]', FALSE, FALSE, $4)
                     ON CONFLICT (cluster, namespace, service_account) DO NOTHING"
                ),
                &[&change.cluster, &change.namespace, &change.service_account, &now],
            )
            .await
            .map_err(&error)?;
        }
        let row = tx
            .query_opt(
                &format!("SELECT {POLICY_COLUMNS} FROM policies WHERE cluster = $1 AND namespace = $2 AND service_account = $3 FOR UPDATE"),
                &key,
            )
            .await
            .map_err(&error)?;
        let current = row.map(|row| policy_from(&row)).transpose()?;
        let policy = change
            .applied_to(current, now)
            .map_err(|missing| StorageError::NotFound(missing.to_string()))?;
        tx.execute(
            &format!(
                "INSERT INTO policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (cluster, namespace, service_account) DO UPDATE SET digests = excluded.digests, updated_at = excluded.updated_at"
            ),
            &[
                &policy.cluster,
                &policy.namespace,
                &policy.service_account,
                &to_json(&policy.digests),
                &policy.audit_mode,
                &policy.require_nonce,
                &policy.updated_at,
            ],
        )
        .await
        .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok(policy)
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>, StorageError> {
        let rows = self
            .query(
                "list policies",
                &format!("SELECT {POLICY_COLUMNS} FROM policies ORDER BY cluster, namespace, service_account"),
                &[],
            )
            .await?;
        rows.iter().map(policy_from).collect()
    }
}
