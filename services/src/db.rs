//! The database: SQLite by default (a file in the data folder), PostgreSQL when the URL says
//! so. One schema serves both (text ids, BIGINT times and flags); migrations are embedded.

use crate::error::{Result, ServiceError};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use std::str::FromStr;

/// A pool over either backend.
pub type Db = AnyPool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which backend a URL names.
pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// A SQLite database holds password hashes and wrapped keys: its file is created 0600 before
/// SQLite opens it (SQLite gives its `-wal` and `-shm` files the database file's mode), and an
/// existing one and its companions are made 0600.
fn private_sqlite_files(url: &str) -> Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let fail = |p: &str, e: std::io::Error| ServiceError::Import(format!("database file {p}: {e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| fail(path, e))?;
        for file in [
            path.to_string(),
            format!("{path}-wal"),
            format!("{path}-shm"),
        ] {
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(&file, e)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Connects, creating a SQLite file if missing, and runs the migrations.
pub async fn connect(url: &str) -> Result<Db> {
    sqlx::any::install_default_drivers();
    let sqlite = is_sqlite(url);
    if sqlite {
        private_sqlite_files(url)?;
        // Create the file (and WAL mode, which is persistent) through the native driver.
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map_err(|e| ServiceError::Import(format!("database URL {url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let c = sqlx::ConnectOptions::connect(&opts)
            .await
            .map_err(|e| ServiceError::Import(format!("cannot open the database {url}: {e}")))?;
        sqlx::Connection::close(c).await.ok();
    }
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite { 4 } else { 16 })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    conn.execute(
                        "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| ServiceError::Import(format!("cannot connect to the database: {e}")))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| ServiceError::Import(format!("database migration failed: {e}")))?;
    Ok(pool)
}
