//! The PostgreSQL schema of one run: created fresh (the servers reach it
//! through `options=-csearch_path%3D<schema>` in their URL) and dropped at
//! the end. URLs are shown with their password removed.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::DeploymentError;

/// A fresh PostgreSQL schema for one run, dropped by [`PostgresSchema::drop_schema`].
pub struct PostgresSchema {
    base: Zeroizing<String>,
    schema: String,
}

impl PostgresSchema {
    /// Connects to `base` and creates `podseal_bench_<random>`. An
    /// unreachable server is an error, never a skip.
    pub async fn create(base: &str) -> Result<Self, DeploymentError> {
        let mut random = [0u8; 8];
        podseal_core::fill_random(&mut random).map_err(|_| DeploymentError::Generate {
            what: "a schema name",
            reason: "no randomness".into(),
        })?;
        let schema = format!(
            "podseal_bench_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let this = Self {
            base: Zeroizing::new(base.to_owned()),
            schema,
        };
        this.execute(&format!("CREATE SCHEMA {}", this.schema))
            .await?;
        Ok(this)
    }

    /// The URL the servers use: `search_path` set to the schema.
    pub fn url(&self) -> Zeroizing<String> {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        Zeroizing::new(format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.base.as_str(),
            self.schema
        ))
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.schema
    }

    /// Drops the schema and everything in it (the servers must be stopped).
    pub async fn drop_schema(self) -> Result<(), DeploymentError> {
        self.execute(&format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.schema
        ))
        .await
    }

    async fn execute(&self, sql: &str) -> Result<(), DeploymentError> {
        let error = |reason: String| DeploymentError::Postgres {
            url: redact_url(&self.base),
            reason,
        };
        let connect = tokio_postgres::connect(&self.base, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| error("no answer within 10 s".into()))?
            .map_err(|e| error(format!("{e} (is it running? set --postgres-url)")))?;
        let driver = tokio::spawn(connection);
        let done = client
            .batch_execute(sql)
            .await
            .map_err(|e| error(e.to_string()));
        drop(client);
        let _ = driver.await;
        done
    }
}

/// `scheme://user@host…` with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparsable URL)".into();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_a_shown_url() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/x?sslmode=disable"),
            "postgres://app:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(redact_url("host=x password=y"), "(unparsable URL)");
    }
}
