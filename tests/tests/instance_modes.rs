//! Instance modes: how many instances each mode builds, when, and when they are dropped.

use std::sync::Arc;

use rpc_core::{Daemon, InstanceMode, Uri};
use rpc_tests::{InstanceProxy, Lifecycle, spawn_daemon};

async fn register(mode: InstanceMode) -> (Daemon, Uri, Arc<Lifecycle>) {
    let daemon = spawn_daemon().await;
    let lifecycle = Arc::new(Lifecycle::default());
    let factory = lifecycle.clone();
    let uri = daemon
        .register_factory("instance", mode, move || factory.build())
        .unwrap();
    (daemon, uri, lifecycle)
}

#[tokio::test]
async fn an_object_no_client_calls_is_never_built() {
    for mode in [
        InstanceMode::Single,
        InstanceMode::Session,
        InstanceMode::PerCall,
    ] {
        let (daemon, uri, lifecycle) = register(mode).await;
        // Connecting (the handshake) is not a call.
        InstanceProxy::new(uri).proxy().connect().await.unwrap();
        assert_eq!(lifecycle.built(), 0, "{mode:?}");
        drop(daemon);
    }
}

#[tokio::test]
async fn single_serves_every_client_with_one_instance() {
    let (daemon, uri, lifecycle) = register(InstanceMode::Single).await;
    let mut serials = Vec::new();
    for _ in 0..3 {
        let client = InstanceProxy::new(uri.clone());
        serials.push(client.serial().await.unwrap());
        serials.push(client.serial().await.unwrap());
    }
    assert_eq!(serials, vec![0; 6]);
    assert_eq!(lifecycle.built(), 1);
    drop(daemon);
    lifecycle.dropped.wait_for(1).await;
}

#[tokio::test]
async fn session_builds_one_instance_per_connection_and_drops_it_with_the_connection() {
    let (_daemon, uri, lifecycle) = register(InstanceMode::Session).await;
    let first = InstanceProxy::new(uri.clone());
    let first_clone = first.clone();
    let second = InstanceProxy::new(uri);
    let a = first.serial().await.unwrap();
    let b = first_clone.serial().await.unwrap();
    let c = second.serial().await.unwrap();
    let d = second.serial().await.unwrap();
    assert_eq!(
        a, b,
        "clones of a proxy share its connection, and so its session"
    );
    assert_eq!(c, d);
    assert_ne!(a, c, "two connections, two instances");
    assert_eq!(lifecycle.built(), 2);
    assert_eq!(lifecycle.dropped.get(), 0);

    drop(first);
    drop(first_clone);
    // The connection closes with its last proxy; the daemon then drops that session's instance.
    lifecycle.dropped.wait_for(1).await;
    assert_eq!(
        second.serial().await.unwrap(),
        c,
        "the other session is untouched"
    );
    assert_eq!(lifecycle.dropped.get(), 1);
}

#[tokio::test]
async fn percall_builds_a_fresh_instance_for_every_call_and_drops_it_after() {
    let (_daemon, uri, lifecycle) = register(InstanceMode::PerCall).await;
    let client = InstanceProxy::new(uri);
    let mut serials = Vec::new();
    for _ in 0..5 {
        serials.push(client.serial().await.unwrap());
    }
    assert_eq!(serials, vec![0, 1, 2, 3, 4]);
    assert_eq!(lifecycle.built(), 5);
    lifecycle.dropped.wait_for(5).await;
}

#[tokio::test]
async fn objects_can_be_unregistered_while_the_daemon_runs() {
    let (daemon, uri, _) = register(InstanceMode::Single).await;
    let client = InstanceProxy::new(uri.clone());
    client.serial().await.unwrap();
    assert!(daemon.unregister("instance"));
    assert!(!daemon.unregister("instance"));
    assert!(daemon.object_ids().is_empty());
    let error = client.serial().await.unwrap_err();
    assert!(
        matches!(&error, rpc_core::Error::UnknownObject(id) if id == "instance"),
        "{error}"
    );
    let error = InstanceProxy::new(uri).serial().await.unwrap_err();
    assert!(
        matches!(error, rpc_core::Error::UnknownObject(_)),
        "{error}"
    );
}

#[tokio::test]
async fn object_ids_are_unique_per_daemon() {
    let daemon = spawn_daemon().await;
    let lifecycle = Arc::new(Lifecycle::default());
    let first = daemon.register(lifecycle.build()).unwrap();
    let second = daemon.register(lifecycle.build()).unwrap();
    assert_ne!(first.object(), second.object());
    let factory = lifecycle;
    let error = daemon
        .register_factory(first.object().unwrap(), InstanceMode::PerCall, move || {
            factory.build()
        })
        .unwrap_err();
    assert!(
        matches!(error, rpc_core::Error::DuplicateObject(_)),
        "{error}"
    );
}
