//! What only the PostgreSQL backend has: several hosts on one task hub
//! (wake-ups across handles, races between them), its schema version, and
//! an address that may hold a password.

use cairn::history::Event;
use cairn::store::postgres::PostgresStore;
use cairn::store::{RuntimeStatus, StoreError};

use crate::*;

/// Two handles on one fresh database: two hosts.
async fn two_hosts(case: &str) -> (Fixture, cairn::store::Store) {
    let fx = Fixture::postgres(case).await;
    let other = cairn::store::open(fx.pg_url()).unwrap();
    (fx, other)
}

/// Starts instances on `from` until `rx` (another host) hears of one: its
/// listener connects in the background, and a wake-up sent before LISTEN is
/// simply missed. Every wake-up heard meanwhile must name an instance that
/// exists. Returns the id heard of.
async fn until_heard(
    from: &cairn::store::Store,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<std::sync::Arc<cairn::store::Notes>>,
    tag: &str,
) -> String {
    let mut sent = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        for i in 0.. {
            let id = format!("{tag}{i}");
            from.create_instance(new_execution(&id, &format!("{id}-e1"), T0), T0)
                .await
                .unwrap();
            sent.push(id);
            while let Ok(Some(n)) = tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await {
                for id in &n.inbox {
                    assert!(
                        from.get_instance(id).await.unwrap().is_some(),
                        "a wake-up for {id:?}: {n:?}"
                    );
                }
                if let Some(id) = n.inbox.iter().find(|id| sent.contains(id)) {
                    return id.clone();
                }
            }
        }
        unreachable!()
    })
    .await
    .expect("no NOTIFY reached the other host within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_cross_hosts_through_notify() {
    let (fx, other) = two_hosts("wakeups").await;
    let mut theirs = other.subscribe();
    let woken = until_heard(&fx.store, &mut theirs, "n").await;
    // From now on, every committed wake-up crosses: a message, a finish.
    fx.store.send_message(&woken, raised("x"), T0 + 1).await.unwrap();
    notes_until(&mut theirs, |n| n.inbox.contains(&woken)).await;
    let row = first_episode(&fx.store, "fin", Vec::new(), "h1", T0).await;
    complete(&fx.store, &row, "h1", T0 + 1).await;
    notes_until(&mut theirs, |n| n.finished == ["fin"]).await;
    // A message for later is not announced; a refused one neither.
    fx.store
        .create_instance(new_execution("later", "later-e1", T0 + 60_000), T0 + 2)
        .await
        .unwrap();
    assert!(fx.store.send_message("fin", raised("late"), T0 + 3).await.is_err());
    fx.store.send_message("later", raised("marker"), T0 + 4).await.unwrap();
    let n = next_notes(&mut theirs).await;
    assert_eq!(n.inbox, ["later"], "only the marker's wake-up: {n:?}");
    drop(other);
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_its_own_host_once() {
    let fx = Fixture::postgres("ownwake").await;
    let mut mine = fx.store.subscribe();
    let other = cairn::store::open(fx.pg_url()).unwrap();
    let mut theirs = other.subscribe();
    // Wait until the listeners run (the other host hears this one).
    for i in 0.. {
        let id = format!("warm{i}");
        fx.store.create_instance(new_execution(&id, "e", T0), T0).await.unwrap();
        if tokio::time::timeout(std::time::Duration::from_millis(200), theirs.recv())
            .await
            .is_ok()
        {
            break;
        }
        assert!(i < 50, "the listener never connected");
    }
    while mine.try_recv().is_ok() {}
    // One commit here: one local wake-up; the NOTIFY that comes back to
    // this host's own listener is not published again. A marker from the
    // other host proves the listener had time to deliver it.
    fx.store
        .create_instance(new_execution("once", "e", T0), T0)
        .await
        .unwrap();
    other
        .create_instance(new_execution("marker", "e", T0), T0)
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let n = next_notes(&mut mine).await;
        seen.extend(n.inbox.iter().cloned());
        if n.inbox.contains(&"marker".to_owned()) {
            break;
        }
    }
    assert_eq!(seen, ["once", "marker"]);
    drop(other);
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_from_two_hosts_race_safely() {
    let (fx, other) = two_hosts("hostrace").await;
    let row = first_episode(&fx.store, "r", Vec::new(), "h1", T0).await;
    let cp = |tag: &str| {
        checkpoint(
            &row,
            Vec::new(),
            vec![Event::OrchestratorStarted, raised(tag), Event::OrchestratorCompleted],
            RuntimeStatus::Running,
            Vec::new(),
            T0 + 1,
        )
    };
    let (a, b) = tokio::join!(
        fx.store.checkpoint(cp("one"), lease("h1")),
        other.checkpoint(cp("two"), lease("h2"))
    );
    assert!(
        matches!(
            (&a, &b),
            (Ok(()), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(()))
        ),
        "{a:?} {b:?}"
    );
    assert_eq!(other.get_history("r").await.unwrap().len(), 6);
    drop(other);
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_refuses_to_start() {
    let fx = Fixture::postgres("schema").await;
    let pg = fx.store.as_any().downcast_ref::<PostgresStore>().unwrap();
    assert_eq!(
        pg.schema_version().await.unwrap(),
        cairn::store::postgres::SCHEMA_VERSION
    );
    // Opening again (another host starting) migrates nothing.
    drop(cairn::store::open(fx.pg_url()).unwrap());
    pg.set_schema_version(999).await.unwrap();
    let err = cairn::store::open(fx.pg_url()).err().unwrap();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 999, .. }), "{err}");
    assert!(err.to_string().contains("upgrade cairn"));
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_starting_at_once_migrate_once() {
    let (url, name) = new_database("concurrent_open").await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await.map(drop) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
    let store = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        cairn::store::postgres::SCHEMA_VERSION
    );
    drop(store);
    PostgresStore::drop_database(&server_url(), &name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_is_described_without_its_password() {
    let fx = Fixture::postgres("describe").await;
    let described = fx.store.describe();
    assert!(described.starts_with("postgres://"), "{described}");
    assert!(
        described.ends_with(&fx.pg_url().rsplit('/').next().unwrap().to_owned()),
        "{described}"
    );
    let with_password = "postgres://alice:s3cret@db.example:6543/hub?connect_timeout=3";
    let shown = cairn::store::postgres::describe_address(with_password);
    assert_eq!(shown, "postgres://alice@db.example:6543/hub");
    assert!(cairn::store::is_postgres("postgresql://x@y/z"));
    assert!(!cairn::store::is_postgres("./postgres.db"));
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error() {
    // Nothing listens on port 1.
    let err = cairn::store::open("postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    let err = cairn::store::open("postgres://u:pw@[bad").err().unwrap();
    assert!(!err.to_string().contains("pw"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_on_a_postgres_task_hub() {
    use cairn::cli::{Cli, run};
    use clap::Parser;
    let fx = Fixture::postgres("cli").await;
    let url = fx.pg_url();
    let cairn = async |args: &[&str]| {
        let mut argv = vec!["cairn", "--db", &url];
        argv.extend_from_slice(args);
        run(Cli::try_parse_from(argv).unwrap()).await
    };
    let wasm = crate::common::repo_root().join("target/guests/rust/hello-cities.wasm");
    cairn(&["deploy", wasm.to_str().unwrap()]).await.unwrap();
    // No `cairn serve` runs: `--wait` runs a (non-exclusive) engine here.
    cairn(&["start", "HelloCities", "--id", "via-cli", "--wait", "60"])
        .await
        .unwrap();
    let row = fx.store.get_instance("via-cli").await.unwrap().unwrap();
    assert_eq!(row.status, RuntimeStatus::Completed);
    cairn(&["status", "via-cli", "--show-history"]).await.unwrap();
    cairn(&["delete-task-hub", "--yes"]).await.unwrap();
    assert!(fx.store.get_instance("via-cli").await.unwrap().is_none());
    // A database has no file beside it: no lock file, no cache folder
    // named after the URL.
    assert!(!std::path::Path::new("postgres:").exists());
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_recover_when_every_connection_is_lost() {
    let (fx, other) = two_hosts("reconnect").await;
    let mut theirs = other.subscribe();
    until_heard(&fx.store, &mut theirs, "before").await;
    other.create_instance(new_execution("o", "o-e1", T0), T0).await.unwrap();
    // Every connection to the task hub dies (a restart, a failover): the
    // other host's pool and listener, and this host's listener.
    let pg = fx.store.as_any().downcast_ref::<PostgresStore>().unwrap();
    assert!(pg.terminate_other_sessions().await.unwrap() >= 2);
    // Both hosts keep working: dead pooled connections are replaced and the
    // transaction run again (nothing of it had been committed).
    other.send_message("o", raised("after"), T0 + 1).await.unwrap();
    fx.store.send_message("o", raised("again"), T0 + 2).await.unwrap();
    assert_eq!(
        inbox(&other, "o", T0 + 2).await[1..],
        [raised("after"), raised("again")]
    );
    // The listener reconnects: wake-ups cross again, and nothing wrong was
    // published meanwhile (`until_heard` checks every id it hears of).
    until_heard(&fx.store, &mut theirs, "after").await;
    drop(other);
    fx.finish().await;
}
