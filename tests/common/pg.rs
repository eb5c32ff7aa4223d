//! A fresh PostgreSQL database per test on the server named by
//! `CAIRN_TEST_PG` (`scripts/pg.sh start` runs one; `make test` does it).
//! Without the variable, or with an unreachable server, the test FAILS
//! with a message that says so: PostgreSQL tests are never skipped.

use cairn::store::postgres::PostgresStore;

/// The test server's URL, from `CAIRN_TEST_PG` (panics when unset).
pub fn pg_server() -> String {
    match std::env::var("CAIRN_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "CAIRN_TEST_PG is not set: this test needs a PostgreSQL server. \
             Run `export CAIRN_TEST_PG=$(scripts/pg.sh start)` (`make test` does it)"
        ),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// An empty database made for one test, dropped with this value.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    server: String,
}

impl TestDatabase {
    /// Creates `cairn_t_<tag>_<random>` on the test server.
    pub fn new(tag: &str) -> Self {
        let server = pg_server();
        let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).take(30).collect();
        let name = format!(
            "cairn_t_{}_{}",
            tag.to_ascii_lowercase(),
            &cairn::ids::random_hex()[..10]
        );
        let url = block_on(PostgresStore::create_database(&server, &name)).unwrap_or_else(|e| {
            panic!(
                "cannot create a test database on CAIRN_TEST_PG={server}: {e}; \
                 is the server running? (`scripts/pg.sh start`)"
            )
        });
        Self { url, name, server }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Not on this thread: a test may drop it inside a runtime.
        let _ = std::thread::spawn(move || block_on(PostgresStore::drop_database(&server, &name))).join();
    }
}
