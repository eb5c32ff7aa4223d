//! Management: queries and paging, counts, purge, components and versions.

use cairn::store::{
    FunctionKind, InstanceQuery, InstanceRow, PurgeOne, RemoveComponent, RuntimeStatus, Store, StoreError,
};

use crate::*;

crate::conformance!(
    queries_filter_by_status_creation_time_and_id_prefix,
    paging_walks_every_instance_once_in_order,
    purge_takes_only_terminal_instances,
    components_are_stored_once_per_hash,
    prune_keeps_versions_that_failed_instances_need,
    versions_move_only_for_unfinished_instances,
    delete_all_empties_the_task_hub,
);

/// Stores instance `id` with `status`, created at `created`, on `version`.
async fn put(s: &Store, id: &str, status: RuntimeStatus, created: u64, version: &str) {
    let row = InstanceRow {
        instance_id: id.into(),
        execution_id: format!("{id}-e1"),
        name: "Orch".into(),
        version: version.into(),
        status,
        input: None,
        output: None,
        custom_status: Some("\"cs\"".into()),
        created_at: created,
        updated_at: created,
        parent_instance: None,
        history_len: 0,
    };
    s.import_instance(row, Vec::new()).await.unwrap();
}

fn ids(rows: &[InstanceRow]) -> Vec<&str> {
    rows.iter().map(|r| r.instance_id.as_str()).collect()
}

async fn queries_filter_by_status_creation_time_and_id_prefix(s: Store) {
    put(&s, "order-1", RuntimeStatus::Completed, T0 + 10, "v1").await;
    put(&s, "order-2", RuntimeStatus::Running, T0 + 20, "v1").await;
    put(&s, "order-10", RuntimeStatus::Failed, T0 + 30, "v1").await;
    put(&s, "Order-3", RuntimeStatus::Running, T0 + 30, "v1").await;
    put(&s, "invoice-1", RuntimeStatus::Pending, T0 + 40, "v1").await;
    let all = s.list_instances(InstanceQuery::default()).await.unwrap();
    // By creation time, then id in byte order ("O" < "o").
    assert_eq!(ids(&all), ["order-1", "order-2", "Order-3", "order-10", "invoice-1"]);
    assert_eq!(all[0].custom_status.as_deref(), Some("\"cs\""));
    let q = |f: fn(&mut InstanceQuery)| {
        let mut q = InstanceQuery::default();
        f(&mut q);
        q
    };
    let running = s
        .list_instances(q(|q| q.statuses = vec![RuntimeStatus::Running]))
        .await
        .unwrap();
    assert_eq!(ids(&running), ["order-2", "Order-3"]);
    let two = s
        .list_instances(q(|q| q.statuses = vec![RuntimeStatus::Failed, RuntimeStatus::Pending]))
        .await
        .unwrap();
    assert_eq!(ids(&two), ["order-10", "invoice-1"]);
    let range = s
        .list_instances(q(|q| {
            q.created_from = Some(T0 + 20);
            q.created_to = Some(T0 + 30);
        }))
        .await
        .unwrap();
    assert_eq!(ids(&range), ["order-2", "Order-3", "order-10"], "both ends included");
    let prefix = s
        .list_instances(q(|q| q.id_prefix = Some("order-1".into())))
        .await
        .unwrap();
    assert_eq!(ids(&prefix), ["order-1", "order-10"], "case-sensitive prefix");
    let none = s
        .list_instances(q(|q| q.id_prefix = Some("order-1%".into())))
        .await
        .unwrap();
    assert!(none.is_empty(), "a prefix is literal, not a pattern");
    let all_filters = s
        .list_instances(q(|q| {
            q.statuses = vec![RuntimeStatus::Running, RuntimeStatus::Completed];
            q.created_from = Some(T0 + 15);
            q.id_prefix = Some("order".into());
        }))
        .await
        .unwrap();
    assert_eq!(ids(&all_filters), ["order-2"]);
    let mut counts = s.instance_counts().await.unwrap();
    counts.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(
        counts,
        [
            (RuntimeStatus::Completed, 1),
            (RuntimeStatus::Failed, 1),
            (RuntimeStatus::Pending, 1),
            (RuntimeStatus::Running, 2)
        ]
    );
}

async fn paging_walks_every_instance_once_in_order(s: Store) {
    let mut expected = Vec::new();
    for i in 0..23u64 {
        // Several instances per creation time: the id breaks the tie.
        let id = format!("p{:02}", 22 - i);
        put(&s, &id, RuntimeStatus::Running, T0 + i / 5, "v1").await;
        expected.push((T0 + i / 5, id));
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_instances(InstanceQuery {
                top: Some(5),
                after: after.clone(),
                ..InstanceQuery::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.instance_id.clone()));
        seen.extend(page.iter().map(|r| (r.created_at, r.instance_id.clone())));
    }
    assert_eq!(seen, expected);
}

async fn purge_takes_only_terminal_instances(s: Store) {
    put(&s, "run", RuntimeStatus::Running, T0, "v1").await;
    let done = first_episode(&s, "done", Vec::new(), "h", T0).await;
    s.send_message("done", raised("x"), T0 + 1).await.unwrap();
    complete(&s, &done, "h", T0 + 2).await;
    assert_eq!(
        s.purge_instance("run").await.unwrap(),
        PurgeOne::NotTerminal(RuntimeStatus::Running)
    );
    assert_eq!(s.purge_instance("nope").await.unwrap(), PurgeOne::NotFound);
    assert_eq!(s.purge_instance("done").await.unwrap(), PurgeOne::Purged);
    assert!(s.get_instance("done").await.unwrap().is_none());
    assert!(matches!(
        s.get_history("done").await,
        Err(StoreError::InstanceNotFound(_))
    ));
    assert!(s.get_instance("run").await.unwrap().is_some());

    // Batches: terminal only, in the creation range, filtered, limited.
    for (i, st) in [
        RuntimeStatus::Completed,
        RuntimeStatus::Failed,
        RuntimeStatus::Terminated,
        RuntimeStatus::Completed,
        RuntimeStatus::Running,
        RuntimeStatus::Suspended,
        RuntimeStatus::Completed,
    ]
    .into_iter()
    .enumerate()
    {
        put(&s, &format!("b{i}"), st, T0 + 100 + i as u64, "v1").await;
    }
    let only_failed = s
        .purge_terminal_batch(T0, T0 + 1_000, vec![RuntimeStatus::Failed, RuntimeStatus::Running], 10)
        .await
        .unwrap();
    assert_eq!(only_failed, 1, "Running is never purged, even when asked");
    assert_eq!(
        s.purge_terminal_batch(T0 + 100, T0 + 105, Vec::new(), 2).await.unwrap(),
        2
    );
    assert_eq!(
        s.purge_terminal_batch(T0 + 100, T0 + 105, Vec::new(), 10)
            .await
            .unwrap(),
        1
    );
    let left = s.list_instances(InstanceQuery::default()).await.unwrap();
    assert_eq!(ids(&left), ["run", "b4", "b5", "b6"]);
    assert_eq!(
        s.purge_terminal_batch(T0, T0 + 1_000, vec![RuntimeStatus::Running], 10)
            .await
            .unwrap(),
        0
    );
}

async fn components_are_stored_once_per_hash(s: Store) {
    let fns = vec![
        ("Orch".to_owned(), FunctionKind::Orchestrator),
        ("Act".to_owned(), FunctionKind::Activity),
    ];
    s.deploy_component("h1".into(), vec![1, 2, 3], fns.clone(), "{}".into(), T0)
        .await
        .unwrap();
    s.deploy_component(
        "h1".into(),
        vec![1, 2, 3],
        fns.clone(),
        "{\"env\":[\"A\"]}".into(),
        T0 + 1,
    )
    .await
    .unwrap();
    let listed = s.list_functions().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(s.component_bytes("h1").await.unwrap(), vec![1, 2, 3]);
    assert_eq!(
        s.component_grants("h1").await.unwrap(),
        "{\"env\":[\"A\"]}",
        "the newest grants"
    );
    s.deploy_component("h2".into(), vec![4; 70_000], fns[..1].to_vec(), "{}".into(), T0 + 2)
        .await
        .unwrap();
    assert_eq!(
        s.resolve_function("Orch", FunctionKind::Orchestrator).await.unwrap(),
        "h2"
    );
    assert_eq!(s.resolve_function("Act", FunctionKind::Activity).await.unwrap(), "h1");
    assert_eq!(s.component_bytes("h2").await.unwrap().len(), 70_000);
    // Deploying the older build again makes it the newest.
    s.deploy_component("h1".into(), vec![1, 2, 3], fns.clone(), "{}".into(), T0 + 3)
        .await
        .unwrap();
    assert_eq!(
        s.resolve_function("Orch", FunctionKind::Orchestrator).await.unwrap(),
        "h1"
    );
    let orch: Vec<(String, u64)> = s
        .list_functions()
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.name == "Orch")
        .map(|f| (f.hash, f.deployed_at))
        .collect();
    assert_eq!(
        orch,
        [("h1".to_owned(), T0 + 3), ("h2".to_owned(), T0 + 2)],
        "newest first"
    );
    assert!(s.orchestrator_version_exists("Orch", "h2").await.unwrap());
    assert!(
        !s.orchestrator_version_exists("Act", "h1").await.unwrap(),
        "an activity"
    );
    let err = s.resolve_function("Act", FunctionKind::Orchestrator).await.unwrap_err();
    assert!(matches!(err, StoreError::FunctionNotFound { .. }), "{err}");
    assert!(matches!(
        s.component_bytes("h9").await,
        Err(StoreError::VersionNotFound(_))
    ));
    assert!(matches!(
        s.component_grants("h9").await,
        Err(StoreError::VersionNotFound(_))
    ));
}

async fn prune_keeps_versions_that_failed_instances_need(s: Store) {
    let orch = vec![("Orch".to_owned(), FunctionKind::Orchestrator)];
    for (i, h) in ["v1", "v2", "v3", "v4"].iter().enumerate() {
        s.deploy_component((*h).into(), vec![i as u8], orch.clone(), "{}".into(), T0 + i as u64)
            .await
            .unwrap();
    }
    put(&s, "failed", RuntimeStatus::Failed, T0, "v1").await;
    put(&s, "completed", RuntimeStatus::Completed, T0, "v2").await;
    put(&s, "running", RuntimeStatus::Running, T0, "v3").await;
    assert_eq!(s.remove_component("v1").await.unwrap(), RemoveComponent::InUse(1));
    assert_eq!(s.prune_unused_versions().await.unwrap(), ["v2"]);
    let left: Vec<String> = s.list_functions().await.unwrap().into_iter().map(|f| f.hash).collect();
    assert_eq!(left, ["v4", "v3", "v1"]);
    assert!(matches!(
        s.component_bytes("v2").await,
        Err(StoreError::VersionNotFound(_))
    ));
    assert!(s.prune_unused_versions().await.unwrap().is_empty());
    // Once the running instance ends, its version goes too (not the newest).
    put(&s, "running", RuntimeStatus::Terminated, T0, "v3").await;
    assert_eq!(
        s.remove_component("v3").await.unwrap(),
        RemoveComponent::Removed(vec!["Orch".into()])
    );
    assert_eq!(s.remove_component("v3").await.unwrap(), RemoveComponent::NotFound);
    assert_eq!(
        s.resolve_function("Orch", FunctionKind::Orchestrator).await.unwrap(),
        "v4"
    );
}

async fn versions_move_only_for_unfinished_instances(s: Store) {
    let orch = vec![("Orch".to_owned(), FunctionKind::Orchestrator)];
    s.deploy_component("v1".into(), vec![1], orch.clone(), "{}".into(), T0)
        .await
        .unwrap();
    s.deploy_component("v2".into(), vec![2], orch, "{}".into(), T0 + 1)
        .await
        .unwrap();
    put(&s, "a", RuntimeStatus::Running, T0, "v1").await;
    put(&s, "b", RuntimeStatus::Completed, T0, "v1").await;
    put(&s, "c", RuntimeStatus::Suspended, T0, "v1").await;
    let err = s
        .move_instances_to_version("Orch", vec!["a".into()], "v9", T0 + 2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionNotFound(_)), "{err}");
    let moved = s
        .move_instances_to_version(
            "Orch",
            vec!["a".into(), "b".into(), "c".into(), "zz".into()],
            "v2",
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(moved, 2);
    let version = async |id: &str| s.get_instance(id).await.unwrap().unwrap().version;
    assert_eq!(version("a").await, "v2");
    assert_eq!(version("b").await, "v1");
    assert_eq!(version("c").await, "v2");
    assert_eq!(s.get_instance("a").await.unwrap().unwrap().updated_at, T0 + 2);
}

async fn delete_all_empties_the_task_hub(s: Store) {
    s.deploy_component(
        "h".into(),
        vec![1],
        vec![("Orch".into(), FunctionKind::Orchestrator)],
        "{}".into(),
        T0,
    )
    .await
    .unwrap();
    first_episode(&s, "x", Vec::new(), "h", T0).await;
    start(&s, "y", T0).await;
    assert_eq!(s.delete_all().await.unwrap(), 2);
    assert!(s.list_instances(InstanceQuery::default()).await.unwrap().is_empty());
    assert!(s.list_functions().await.unwrap().is_empty());
    assert_eq!(s.queue_depths().await.unwrap(), (0, 0));
    assert!(s.instance_counts().await.unwrap().is_empty());
    s.ping().await.unwrap();
}
