//! PostgreSQL: the audit log: records, checkpoints, the Merkle frontier, export (`AuditStore`).

use super::*;

impl AuditStore for PostgresStorage {
    async fn commit_batch(&self, items: Vec<CommitItem>) -> Result<Vec<Committed>, StorageError> {
        const OPERATION: &str = "commit audit";
        let error = db_error(OPERATION);
        let client = self
            .commit_pool
            .get()
            .await
            .map_err(pool_error(OPERATION))?;
        let lock = self
            .prepare(&client, OPERATION, "SELECT pg_advisory_xact_lock($1)")
            .await?;
        let record_jtis = self
            .prepare(
                &client,
                OPERATION,
                "INSERT INTO dpop_jti (jkt, jti, expires_at)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT (jkt, jti) DO NOTHING RETURNING jkt, jti",
            )
            .await?;
        let read_frontier = self
            .prepare(
                &client,
                OPERATION,
                "SELECT size, nodes FROM audit_frontier WHERE id = 1",
            )
            .await?;
        let append = self
            .prepare(
                &client,
                OPERATION,
                "INSERT INTO audit_log (seq, entry, leaf_hash)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
            )
            .await?;
        let write_frontier = self
            .prepare(
                &client,
                OPERATION,
                "UPDATE audit_frontier SET size = $1, nodes = $2 WHERE id = 1",
            )
            .await?;
        let jtis: Vec<crate::storage::JtiRecord> =
            items.iter().filter_map(|i| i.jti.clone()).collect();
        let jkts: Vec<&str> = jtis.iter().map(|j| j.jkt.as_str()).collect();
        let ids: Vec<&str> = jtis.iter().map(|j| j.jti.as_str()).collect();
        let expiries: Vec<i64> = jtis.iter().map(|j| j.expires_at).collect();
        // Two pipelined flights. The first begins, takes the log's lock
        // (so every replica's batches take turns, and no two wait on each
        // other's jti rows), records the jtis and reads the frontier; the
        // second appends, writes the frontier and commits.
        let outcome = async {
            let (_, _, inserted, frontier) = try_join4(
                client.batch_execute("BEGIN"),
                client.execute(&lock, &[&AUDIT_LOCK]),
                client.query(&record_jtis, &[&jkts, &ids, &expiries]),
                client.query_one(&read_frontier, &[]),
            )
            .await
            .map_err(&error)?;
            self.stats.round_trips(1);
            let inserted = inserted
                .iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
                .collect();
            let frontier = crate::storage::frontier_of(frontier.get(0), frontier.get(1))?;
            let fresh = crate::storage::fresh_items(&items, inserted);
            let (rows, committed, frontier) =
                crate::storage::append_items(items, &fresh, frontier)?;
            let seqs = rows
                .iter()
                .map(|(seq, _, _)| seq_to(*seq))
                .collect::<Result<Vec<i64>, _>>()?;
            let entries: Vec<&[u8]> = rows.iter().map(|(_, bytes, _)| bytes.as_slice()).collect();
            let leaves: Vec<&[u8]> = rows.iter().map(|(_, _, leaf)| leaf.as_slice()).collect();
            let size = seq_to(frontier.size())?;
            let nodes = frontier.nodes_bytes();
            // An aborted transaction answers COMMIT with a rollback, not an
            // error: the append's and the frontier's own results decide.
            let (_, written, _) = try_join3(
                client.execute(&append, &[&seqs, &entries, &leaves]),
                client.execute(&write_frontier, &[&size, &nodes]),
                client.batch_execute("COMMIT"),
            )
            .await
            .map_err(&error)?;
            self.stats.round_trips(1);
            if written != 1 {
                return Err(StorageError::Corrupt("audit frontier"));
            }
            self.stats.commit();
            Ok(committed)
        }
        .await;
        if outcome.is_err() {
            // Leave no open transaction on a pooled connection.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        outcome
    }

    async fn audit_head(&self) -> Result<(u64, Hash), StorageError> {
        let rows = self
            .query(
                "read audit head",
                "SELECT size, nodes FROM audit_frontier WHERE id = 1",
                &[],
            )
            .await?;
        let row = rows
            .first()
            .ok_or(StorageError::Corrupt("audit frontier"))?;
        let frontier = crate::storage::frontier_of(row.get(0), row.get(1))?;
        Ok((frontier.size(), frontier.root()))
    }

    async fn probe_write(&self) -> Result<(), StorageError> {
        self.execute(
            "probe a write",
            "UPDATE audit_frontier SET size = size WHERE id = 1",
            &[],
        )
        .await
        .map(|_| ())
    }

    async fn put_checkpoint(&self, checkpoint: Checkpoint) -> Result<(), StorageError> {
        self.execute(
            "store checkpoint",
            "INSERT INTO audit_checkpoints (size, note) VALUES ($1, $2)
             ON CONFLICT (size) DO NOTHING",
            &[&seq_to(checkpoint.size())?, &checkpoint.note()],
        )
        .await
        .map(|_| ())
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        let rows = self
            .query(
                "read latest checkpoint",
                "SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
                &[],
            )
            .await?;
        rows.first()
            .map(|row| {
                Checkpoint::parse(row.get::<_, &str>(0))
                    .map_err(|_| StorageError::Corrupt("checkpoint"))
            })
            .transpose()
    }

    async fn legacy_checkpoint(&self) -> Result<Option<ChainCheckpoint>, StorageError> {
        let rows = self
            .query(
                "read chain checkpoint",
                "SELECT checkpoint FROM audit_chain_checkpoints ORDER BY size DESC LIMIT 1",
                &[],
            )
            .await?;
        rows.first()
            .map(|row| {
                serde_json::from_str(row.get::<_, &str>(0))
                    .map_err(|_| StorageError::Corrupt("chain checkpoint"))
            })
            .transpose()
    }

    async fn audit_export(&self) -> Result<Vec<ExportLine>, StorageError> {
        let error = db_error("export audit");
        let mut client = self.client("export audit").await?;
        // One snapshot for records and checkpoints.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(&error)?;
        let checkpoints: Vec<(u64, Checkpoint)> = tx
            .query("SELECT size, note FROM audit_checkpoints", &[])
            .await
            .map_err(&error)?
            .iter()
            .map(|row| {
                Ok((
                    seq_of(row.get(0))?,
                    Checkpoint::parse(row.get(1))
                        .map_err(|_| StorageError::Corrupt("checkpoint"))?,
                ))
            })
            .collect::<Result<_, StorageError>>()?;
        let records = tx
            .query(
                "SELECT seq, entry, leaf_hash FROM audit_log ORDER BY seq",
                &[],
            )
            .await
            .map_err(&error)?
            .iter()
            .map(|row| Ok((seq_of(row.get(0))?, row.get(1), hash32(row.get(2))?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let lines = crate::storage::export_lines(records, checkpoints);
        tx.commit().await.map_err(&error)?;
        Ok(lines)
    }
}
