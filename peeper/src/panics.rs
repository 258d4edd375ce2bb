//! [`quiet_caught_panics`]: keeps Rust's panic hook from printing the panics that peeper
//! catches and reports itself; and [`panic_message`], the text of a caught panic.

use std::any::Any;
use std::sync::Once;

/// Keeps the panic hook quiet about panics in handlers, which peeper catches, answers
/// ([`CallError::Crashed`](crate::CallError::Crashed)) and reports once through `tracing` (an
/// `error` event, "worker crashed", with the panic's message), so that 20 expected crashes in a
/// test run print 20 log lines instead of 20 backtraces. Every other panic (in your own tasks,
/// in `main`, in a test's assertions) still goes to the hook that was installed before, with
/// its backtrace.
///
/// A handler panic is one raised while the worker polls a handler (`init`, a call, a cast, an
/// info, a continuation, a timeout, `terminate`), on that thread. A panic in a task the handler
/// spawned is that task's, and is printed. Installing it more than once installs it once; call
/// it early in `main`, or at the start of each test that crashes servers on purpose.
///
/// ```
/// #[derive(Clone, Default)]
/// pub struct Fragile;
///
/// #[peeper::server]
/// impl Fragile {
///     #[call]
///     fn crash(&self) { panic!("expected") }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// peeper::quiet_caught_panics(); // nothing printed for the panic below
/// let fragile = Fragile::start(Fragile).await?;
/// assert!(fragile.crash().await.is_err());
/// # Ok(()) }
/// ```
pub fn quiet_caught_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !crate::handling::in_a_handler() {
                previous(info);
            }
        }));
    });
}

/// The text of a panic payload: panics carry a `&'static str` or a `String` in practice.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}
