//! Schema migrations and connection PRAGMAs.

use rusqlite::Connection;

use crate::store::StoreError;

/// Numbered migrations; index + 1 is the schema version (`PRAGMA user_version`).
/// Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r"
    CREATE TABLE components (
        hash        TEXT PRIMARY KEY,        -- sha256 of the .wasm bytes
        bytes       BLOB NOT NULL,
        size        INTEGER NOT NULL,
        deployed_at INTEGER NOT NULL
    );
    CREATE TABLE functions (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- deploy order: newest version wins
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('orchestrator','activity')),
        hash        TEXT NOT NULL REFERENCES components(hash),
        deployed_at INTEGER NOT NULL,
        UNIQUE (name, hash)
    );
    CREATE INDEX functions_by_name ON functions(name, seq);
    CREATE TABLE instances (
        instance_id      TEXT PRIMARY KEY,
        execution_id     TEXT NOT NULL,
        name             TEXT NOT NULL,
        version          TEXT NOT NULL,      -- component hash the execution is pinned to
        status           TEXT NOT NULL,
        input            TEXT,
        output           TEXT,
        custom_status    TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        parent_instance  TEXT,
        history_len      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX instances_by_status ON instances(status, created_at);
    CREATE INDEX instances_by_created ON instances(created_at);
    CREATE TABLE history (
        instance_id  TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        seq          INTEGER NOT NULL,
        event_type   TEXT NOT NULL,
        timestamp    INTEGER NOT NULL,
        data         TEXT NOT NULL,
        PRIMARY KEY (instance_id, execution_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE inbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id  TEXT NOT NULL,
        execution_id TEXT,                   -- NULL: for whatever execution is current
        kind         TEXT NOT NULL,
        visible_at   INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        data         TEXT NOT NULL
    );
    CREATE INDEX inbox_by_instance ON inbox(instance_id, id);
    CREATE INDEX inbox_by_visible ON inbox(visible_at);
    CREATE TABLE work_items (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id     TEXT NOT NULL,
        execution_id    TEXT NOT NULL,
        task_id         INTEGER NOT NULL,
        name            TEXT NOT NULL,
        input           TEXT NOT NULL,
        retry           TEXT,
        attempt         INTEGER NOT NULL DEFAULT 1,
        first_scheduled INTEGER NOT NULL,
        visible_at      INTEGER NOT NULL,
        lease_owner     TEXT,
        lease_expires   INTEGER,
        UNIQUE (instance_id, execution_id, task_id)
    );
    CREATE INDEX work_items_by_visible ON work_items(visible_at);
    ",
    // 2: critical sections.
    r"
    CREATE TABLE lock_requests (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,   -- FIFO order
        instance_id  TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        task_id      INTEGER NOT NULL,
        names        TEXT NOT NULL,                       -- JSON array, sorted
        acquired     INTEGER NOT NULL DEFAULT 0,          -- how many of names are held
        granted      INTEGER NOT NULL DEFAULT 0,
        created_at   INTEGER NOT NULL,
        UNIQUE (instance_id, execution_id, task_id)
    );
    CREATE TABLE locks (
        name        TEXT PRIMARY KEY,
        request_id  INTEGER NOT NULL REFERENCES lock_requests(id),
        instance_id TEXT NOT NULL,
        since       INTEGER NOT NULL
    );
    CREATE INDEX locks_by_instance ON locks(instance_id);
    CREATE INDEX lock_requests_by_instance ON lock_requests(instance_id);
    ",
    // 3: capabilities granted to activity components at deploy (JSON).
    r"
    ALTER TABLE components ADD COLUMN grants TEXT NOT NULL DEFAULT '{}';
    ",
    // 4: the message that grants a lock request, built by the decision core.
    r"
    ALTER TABLE lock_requests ADD COLUMN grant_event TEXT;
    ",
    // 5: per-instance leases: the engine that runs an instance's episodes.
    r"
    ALTER TABLE instances ADD COLUMN lease_owner TEXT;
    ALTER TABLE instances ADD COLUMN lease_expires INTEGER;
    ",
    // 6: the console's listing filtered by orchestrator name, newest first.
    r"
    CREATE INDEX instances_by_name ON instances(name, created_at);
    ",
    // 7: durable entities: a third function kind, and clients' idempotency
    // keys of entity signals (SQLite cannot alter a CHECK: the table is
    // rebuilt).
    r"
    CREATE TABLE functions_v7 (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('orchestrator','activity','entity')),
        hash        TEXT NOT NULL REFERENCES components(hash),
        deployed_at INTEGER NOT NULL,
        UNIQUE (name, hash)
    );
    INSERT INTO functions_v7 (seq, name, kind, hash, deployed_at) SELECT seq, name, kind, hash, deployed_at FROM functions;
    DROP TABLE functions;
    ALTER TABLE functions_v7 RENAME TO functions;
    CREATE INDEX functions_by_name ON functions(name, seq);
    CREATE TABLE entity_requests (
        request_key TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX entity_requests_by_time ON entity_requests(received_at);
    ",
];

/// Current schema version of this build.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// PRAGMAs every connection gets, read back and asserted.
/// `(name, value set, value expected on read-back)`.
const PRAGMAS: &[(&str, &str, &str)] = &[
    // Readers never block the writer; required for concurrent status reads.
    ("journal_mode", "WAL", "wal"),
    // FULL: a committed checkpoint survives power loss, not only a crash
    // (NORMAL in WAL mode may lose the last transactions on power loss).
    ("synchronous", "FULL", "2"),
    ("foreign_keys", "ON", "1"),
    // Another process (the CLI next to `cairn serve`) may hold the write
    // lock briefly; wait instead of failing.
    ("busy_timeout", "5000", "5000"),
];

/// Applies and verifies the PRAGMAs of [`PRAGMAS`].
///
/// # Errors
/// [`StoreError::Setting`] when SQLite did not take a setting.
pub fn configure(conn: &Connection) -> Result<(), StoreError> {
    for (name, value, expected) in PRAGMAS {
        conn.execute_batch(&format!("PRAGMA {name} = {value};"))?;
        let got: String = conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            Ok(match r.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).to_lowercase(),
                other => format!("{other:?}"),
            })
        })?;
        if got != *expected {
            return Err(StoreError::Setting { name, expected, got });
        }
    }
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`].
///
/// # Errors
/// [`StoreError::SchemaTooNew`] for a task hub written by a newer Cairn;
/// [`StoreError::Corrupt`] when the file is not a healthy SQLite database.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(check));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
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
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}
