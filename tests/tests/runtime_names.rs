//! Name registration: unique per server type, freed when the branch ends, stable across restarts.
#![allow(clippy::unwrap_used)]

use peeper::{DynamicSupervisor, Exit, Server, StartError};
use peeper_tests::{Counter, CounterCast, CounterClient, Quiet, kill_and_wait, unique};

/// Peeper: "name registration": a second start under a taken name fails, a stop frees it.
#[tokio::test]
async fn name_registration() {
    let name = unique("named");
    assert!(peeper::whereis::<Counter>(&name).is_none());
    let counter = Counter::builder(Counter::at(1))
        .name(&name)
        .start()
        .await
        .unwrap();
    assert_eq!(counter.branch().name(), Some(name.as_str()));
    let found = peeper::whereis::<Counter>(&name).expect("registered");
    assert_eq!(found.branch().id(), counter.branch().id());

    let taken = Counter::builder(Counter::at(2)).name(&name).start().await;
    assert_eq!(
        taken.unwrap_err(),
        StartError::NameTaken {
            name: name.clone(),
            server: counter.branch().server()
        }
    );
    // The failed start did not disturb the holder.
    assert_eq!(
        peeper::whereis::<Counter>(&name).unwrap().get().await,
        Ok(1)
    );

    counter.stop().await.unwrap();
    assert!(peeper::whereis::<Counter>(&name).is_none());

    let again = Counter::builder(Counter::at(3))
        .name(&name)
        .start()
        .await
        .unwrap();
    assert_ne!(again.branch().id(), counter.branch().id());
    assert_eq!(
        peeper::whereis::<Counter>(&name).unwrap().get().await,
        Ok(3)
    );
    again.stop().await.unwrap();
}

/// Names are per server type: two types may share one.
#[tokio::test]
async fn names_are_per_server_type() {
    let name = unique("shared");
    let counter = Counter::builder(Counter::at(1))
        .name(&name)
        .start()
        .await
        .unwrap();
    let quiet = Quiet::builder(Quiet { value: 2 })
        .name(&name)
        .start()
        .await
        .unwrap();
    assert_eq!(
        peeper::whereis::<Counter>(&name).unwrap().get().await,
        Ok(1)
    );
    assert_eq!(
        peeper::whereis::<Quiet>(&name).unwrap().call(()).await,
        Ok(2)
    );

    // Stopping one frees the name for its type only.
    quiet.stop().await.unwrap();
    assert!(peeper::whereis::<Quiet>(&name).is_none());
    assert!(peeper::whereis::<Counter>(&name).is_some());
    counter.stop().await.unwrap();
    assert!(peeper::whereis::<Counter>(&name).is_none());
}

/// The name resolves to the same branch across restarts.
#[tokio::test]
async fn a_name_survives_restarts() {
    let name = unique("restarting");
    let counter = Counter::builder(Counter::at(0))
        .name(&name)
        .start()
        .await
        .unwrap();
    for _ in 0..3 {
        peeper::whereis::<Counter>(&name)
            .unwrap()
            .cast(CounterCast::Inc)
            .unwrap();
        kill_and_wait(&counter).await;
    }
    let found = peeper::whereis::<Counter>(&name).unwrap();
    assert_eq!(found.branch().id(), counter.branch().id());
    assert_eq!(found.get().await, Ok(3));
    counter.stop().await.unwrap();
}

/// Every end frees the name: a supervisor's shutdown too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_frees_names() {
    let sup = DynamicSupervisor::new();
    let (a, b) = (unique("shut-a"), unique("shut-b"));
    let first = sup
        .start_child(Counter::builder(Counter::at(1)).name(&a))
        .await
        .unwrap();
    let second = sup
        .start_child(Counter::builder(Counter::at(2)).name(&b))
        .await
        .unwrap();
    sup.shutdown().await;
    assert_eq!(first.branch().exit(), Some(Exit::Shutdown));
    assert_eq!(second.branch().ended().await, Exit::Shutdown);
    assert!(peeper::whereis::<Counter>(&a).is_none());
    assert!(peeper::whereis::<Counter>(&b).is_none());
    assert!(sup.which_children().is_empty());
    assert_eq!(
        sup.start_child(Counter::builder(Counter::at(3)).name(&a))
            .await
            .unwrap_err(),
        StartError::SupervisorStopped
    );
    // A refused start leaves no name behind.
    assert!(peeper::whereis::<Counter>(&a).is_none());
}
