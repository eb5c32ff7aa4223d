//! Schema migrations and the settings a task hub needs.
//!
//! The tables mirror the SQLite backend's (at its schema 5), with
//! PostgreSQL types: millis as BIGINT, component bytes as BYTEA, ids from
//! identity columns. Text keys use the "C" collation so that ordering and
//! paging (`ORDER BY created_at, instance_id`) are byte order, as in SQLite,
//! whatever the database's default collation.

use tokio_postgres::NoTls;

use super::pg;
use crate::store::StoreError;

/// Numbered migrations; index + 1 is the version recorded in
/// `schema_migrations`. Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: the task hub as of SQLite schema 5.
    r#"
    CREATE TABLE components (
        hash        TEXT COLLATE "C" PRIMARY KEY,      -- sha256 of the .wasm bytes
        bytes       BYTEA NOT NULL,
        size        BIGINT NOT NULL,
        deployed_at BIGINT NOT NULL,
        grants      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE SEQUENCE functions_seq;
    CREATE TABLE functions (
        name        TEXT COLLATE "C" NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('orchestrator','activity')),
        hash        TEXT COLLATE "C" NOT NULL REFERENCES components(hash),
        seq         BIGINT NOT NULL DEFAULT nextval('functions_seq'),  -- deploy order: newest version wins
        deployed_at BIGINT NOT NULL,
        PRIMARY KEY (name, hash)
    );
    CREATE INDEX functions_by_name ON functions(name, seq);
    CREATE INDEX functions_by_hash ON functions(hash);
    CREATE TABLE instances (
        instance_id      TEXT COLLATE "C" PRIMARY KEY,
        execution_id     TEXT COLLATE "C" NOT NULL,
        name             TEXT COLLATE "C" NOT NULL,
        version          TEXT COLLATE "C" NOT NULL,  -- component hash the execution is pinned to
        status           TEXT NOT NULL,
        input            TEXT,
        output           TEXT,
        custom_status    TEXT,
        created_at       BIGINT NOT NULL,
        updated_at       BIGINT NOT NULL,
        parent_instance  TEXT COLLATE "C",
        history_len      BIGINT NOT NULL DEFAULT 0,
        lease_owner      TEXT COLLATE "C",
        lease_expires    BIGINT
    );
    CREATE INDEX instances_by_status ON instances(status, created_at);
    CREATE INDEX instances_by_created ON instances(created_at, instance_id);
    CREATE INDEX instances_by_version ON instances(version);
    CREATE INDEX instances_by_lease ON instances(lease_owner) WHERE lease_owner IS NOT NULL;
    CREATE TABLE history (
        instance_id  TEXT COLLATE "C" NOT NULL,
        execution_id TEXT COLLATE "C" NOT NULL,
        seq          BIGINT NOT NULL,
        event_type   TEXT NOT NULL,
        timestamp    BIGINT NOT NULL,
        data         TEXT NOT NULL,
        PRIMARY KEY (instance_id, execution_id, seq)
    );
    CREATE TABLE inbox (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        instance_id  TEXT COLLATE "C" NOT NULL,
        execution_id TEXT COLLATE "C",               -- NULL: for whatever execution is current
        kind         TEXT NOT NULL,
        visible_at   BIGINT NOT NULL,
        created_at   BIGINT NOT NULL,
        data         TEXT NOT NULL
    );
    CREATE INDEX inbox_by_instance ON inbox(instance_id, id);
    CREATE INDEX inbox_by_visible ON inbox(visible_at);
    CREATE TABLE work_items (
        id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        instance_id     TEXT COLLATE "C" NOT NULL,
        execution_id    TEXT COLLATE "C" NOT NULL,
        task_id         BIGINT NOT NULL,
        name            TEXT NOT NULL,
        input           TEXT NOT NULL,
        retry           TEXT,
        attempt         BIGINT NOT NULL DEFAULT 1,
        first_scheduled BIGINT NOT NULL,
        visible_at      BIGINT NOT NULL,
        lease_owner     TEXT COLLATE "C",
        lease_expires   BIGINT,
        UNIQUE (instance_id, execution_id, task_id)
    );
    CREATE INDEX work_items_by_visible ON work_items(visible_at);
    CREATE TABLE lock_requests (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- FIFO order
        instance_id  TEXT COLLATE "C" NOT NULL,
        execution_id TEXT COLLATE "C" NOT NULL,
        task_id      BIGINT NOT NULL,
        names        TEXT NOT NULL,                  -- JSON array, sorted
        acquired     BIGINT NOT NULL DEFAULT 0,      -- how many of names are held
        granted      BOOLEAN NOT NULL DEFAULT false,
        created_at   BIGINT NOT NULL,
        grant_event  TEXT,                           -- the message that grants it
        UNIQUE (instance_id, execution_id, task_id)
    );
    CREATE INDEX lock_requests_by_instance ON lock_requests(instance_id);
    CREATE TABLE locks (
        name        TEXT COLLATE "C" PRIMARY KEY,
        request_id  BIGINT NOT NULL REFERENCES lock_requests(id),
        instance_id TEXT COLLATE "C" NOT NULL,
        since       BIGINT NOT NULL
    );
    CREATE INDEX locks_by_request ON locks(request_id);
    "#,
    // 2: durable entities: a third function kind, and clients' idempotency
    // keys of entity signals.
    r#"
    ALTER TABLE functions DROP CONSTRAINT IF EXISTS functions_kind_check;
    ALTER TABLE functions ADD CONSTRAINT functions_kind_check CHECK (kind IN ('orchestrator','activity','entity'));
    CREATE TABLE entity_requests (
        request_key TEXT COLLATE "C" PRIMARY KEY,
        received_at BIGINT NOT NULL
    );
    CREATE INDEX entity_requests_by_time ON entity_requests(received_at);
    "#,
    // 3: room on each page of the instance rows for their next version, so
    // that a checkpoint that changes no indexed column (a hot instance's
    // status stays Running, its lease owner stays) is a HOT update: no new
    // index entries, and the old version is pruned without VACUUM.
    r#"
    ALTER TABLE instances SET (fillfactor = 70);
    "#,
];

/// Current schema version of this build.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the advisory lock held while migrating ("cairnMig"), so that two
/// hosts starting at once migrate one after the other.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e4d_6967;

/// Server settings a durable task hub needs, read back and asserted:
/// `(name, expected)`.
const SETTINGS: &[(&str, &str)] = &[
    // Without fsync a committed checkpoint may not survive a power loss.
    ("fsync", "on"),
];

/// Connects once, checks [`SETTINGS`] and brings the schema up to
/// [`SCHEMA_VERSION`] in one transaction under an advisory lock.
///
/// # Errors
/// Connection errors; [`StoreError::Setting`]; [`StoreError::SchemaTooNew`].
pub async fn migrate(config: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (mut client, conn) = config.connect(NoTls).await.map_err(|e| StoreError::Open {
        path: super::describe(config).into(),
        reason: e.to_string(),
    })?;
    let driver = tokio::spawn(conn);
    let result = async {
        for (name, expected) in SETTINGS {
            let got: String = client
                .query_one("SELECT current_setting($1)", &[name])
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            if got != *expected {
                return Err(StoreError::Setting { name, expected, got });
            }
        }
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(pg)?;
        let version: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }
    .await;
    drop(client);
    let _ = driver.await;
    result
}
