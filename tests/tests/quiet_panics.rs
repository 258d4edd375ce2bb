//! `peeper::quiet_caught_panics` keeps the panic hook quiet about the panics peeper catches in
//! handlers, and only those. A test binary of its own: the panic hook is process-wide.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peeper::{CallError, Exit};

#[derive(Clone, Debug, Default)]
pub struct Fragile;

#[peeper::server]
impl Fragile {
    #[call]
    fn crash(&self) {
        panic!("in a handler");
    }

    /// A panic in a task the handler spawned is that task's: the hook hears it.
    #[call]
    async fn crash_in_a_task(&self) -> bool {
        tokio::spawn(async { panic!("in a spawned task") })
            .await
            .is_err()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn only_panics_peeper_catches_in_handlers_are_kept_quiet() {
    let heard = Arc::new(AtomicUsize::new(0));
    std::panic::set_hook(Box::new({
        let heard = Arc::clone(&heard);
        move |_| {
            heard.fetch_add(1, Ordering::SeqCst);
        }
    }));
    peeper::quiet_caught_panics();
    peeper::quiet_caught_panics(); // installed once

    let fragile = Fragile::start(Fragile).await.unwrap();
    assert_eq!(
        fragile.crash().await,
        Err(CallError::Crashed(Exit::Panicked {
            message: "in a handler".to_owned()
        }))
    );
    assert_eq!(
        heard.load(Ordering::SeqCst),
        0,
        "a caught handler panic is quiet"
    );

    assert_eq!(fragile.crash_in_a_task().await, Ok(true));
    assert_eq!(
        heard.load(Ordering::SeqCst),
        1,
        "a task's own panic is heard"
    );

    let outside = std::panic::catch_unwind(|| panic!("outside any server"));
    assert!(outside.is_err());
    assert_eq!(
        heard.load(Ordering::SeqCst),
        2,
        "a panic outside peeper is heard"
    );
}
