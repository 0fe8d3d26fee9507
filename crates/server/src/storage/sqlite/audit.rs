//! SQLite: the audit log: records, checkpoints, the Merkle frontier, export (`AuditStore`).

use super::*;

impl AuditStore for SqliteStorage {
    async fn commit_batch(&self, items: Vec<CommitItem>) -> Result<Vec<Committed>, StorageError> {
        let stats = self.stats.clone();
        self.run("commit audit", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut inserted = std::collections::HashSet::new();
            {
                let mut record_jti = tx.prepare_cached(
                    "INSERT OR IGNORE INTO dpop_jti (jkt, jti, expires_at) VALUES (?1, ?2, ?3)",
                )?;
                for jti in items.iter().filter_map(|item| item.jti.as_ref()) {
                    if record_jti.execute(params![jti.jkt, jti.jti, jti.expires_at])? == 1 {
                        inserted.insert((jti.jkt.clone(), jti.jti.clone()));
                    }
                }
            }
            let fresh = crate::storage::fresh_items(&items, inserted);
            let frontier = read_frontier(&tx)?;
            let (rows, committed, frontier) =
                crate::storage::append_items(items, &fresh, frontier).map_err(conversion)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit_log (seq, entry, leaf_hash) VALUES (?1, ?2, ?3)",
                )?;
                for (seq, bytes, leaf) in rows {
                    insert.execute(params![
                        i64::try_from(seq).map_err(conversion)?,
                        bytes,
                        leaf.to_vec()
                    ])?;
                }
            }
            // The frontier moves in the same transaction as the rows it covers.
            tx.prepare_cached("UPDATE audit_frontier SET size = ?1, nodes = ?2 WHERE id = 1")?
                .execute(params![
                    i64::try_from(frontier.size()).map_err(conversion)?,
                    frontier.nodes_bytes()
                ])?;
            tx.commit()?;
            stats.commit();
            Ok(committed)
        })
        .await
    }

    async fn audit_head(&self) -> Result<(u64, Hash), StorageError> {
        self.run("read audit head", |c| {
            let frontier = read_frontier(c)?;
            Ok((frontier.size(), frontier.root()))
        })
        .await
    }

    async fn probe_write(&self) -> Result<(), StorageError> {
        self.run("probe a write", |c| {
            // A row written and removed in one transaction: SQLite skips a
            // write that leaves a row's bytes as they were, so an unchanged
            // update would prove nothing. The key is no thumbprint.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO dpop_jti (jkt, jti, expires_at) VALUES ('readiness probe', '', 0)",
                [],
            )?;
            tx.execute(
                "DELETE FROM dpop_jti WHERE jkt = 'readiness probe' AND jti = ''",
                [],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn put_checkpoint(&self, checkpoint: Checkpoint) -> Result<(), StorageError> {
        self.run("store checkpoint", move |c| {
            let size = i64::try_from(checkpoint.size()).map_err(conversion)?;
            c.execute(
                "INSERT OR IGNORE INTO audit_checkpoints (size, note) VALUES (?1, ?2)",
                params![size, checkpoint.note()],
            )?;
            Ok(())
        })
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        self.run("read latest checkpoint", |c| {
            let note: Option<String> = c
                .query_row(
                    "SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            note.map(|note| Checkpoint::parse(&note).map_err(conversion))
                .transpose()
        })
        .await
    }

    async fn legacy_checkpoint(&self) -> Result<Option<ChainCheckpoint>, StorageError> {
        self.run("read chain checkpoint", |c| {
            let json: Option<String> = c
                .query_row(
                    "SELECT checkpoint FROM audit_chain_checkpoints ORDER BY size DESC LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            json.map(|json| serde_json::from_str(&json).map_err(conversion))
                .transpose()
        })
        .await
    }

    async fn audit_export(&self) -> Result<Vec<ExportLine>, StorageError> {
        let (records, checkpoints) = self
            .run("export audit", |c| {
                let tx = c.transaction()?;
                let checkpoints: Vec<(u64, Checkpoint)> = {
                    let mut statement = tx.prepare("SELECT size, note FROM audit_checkpoints")?;
                    let rows = statement.query_map([], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                    })?;
                    rows.map(|row| {
                        let (size, note) = row?;
                        Ok((
                            u64::try_from(size).map_err(conversion)?,
                            Checkpoint::parse(&note).map_err(conversion)?,
                        ))
                    })
                    .collect::<rusqlite::Result<_>>()?
                };
                let mut records = Vec::new();
                {
                    let mut statement =
                        tx.prepare("SELECT seq, entry, leaf_hash FROM audit_log ORDER BY seq")?;
                    let mut rows = statement.query([])?;
                    while let Some(row) = rows.next()? {
                        let seq = u64::try_from(row.get::<_, i64>(0)?).map_err(conversion)?;
                        // Whatever type the cell now has (an edited row may hold TEXT),
                        // export its bytes and let verification judge them.
                        let entry = match row.get_ref(1)? {
                            rusqlite::types::ValueRef::Blob(bytes)
                            | rusqlite::types::ValueRef::Text(bytes) => bytes.to_vec(),
                            _ => Vec::new(),
                        };
                        records.push((seq, entry, hash32(row.get(2)?)?));
                    }
                }
                tx.commit()?;
                Ok((records, checkpoints))
            })
            .await?;
        Ok(crate::storage::export_lines(records, checkpoints))
    }
}
