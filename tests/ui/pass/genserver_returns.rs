//! Every GenServer return, in the macro's form: a deferred reply, a continuation, a handler
//! timeout, a stop with a reason, and `init` declining.
use std::time::Duration;

use peeper::{Ignore, ReplyTo};

#[derive(Clone, Default)]
pub struct Everything {
    enabled: bool,
    warm: bool,
}

#[peeper::server]
impl Everything {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), Ignore> {
        if !self.enabled {
            return Err(Ignore);
        }
        ctx.continue_with(EverythingCast::Warm);
        Ok(())
    }

    #[cast]
    fn warm(&mut self, ctx: &mut peeper::Context<Self>) {
        self.warm = true;
        ctx.set_timeout(Duration::from_secs(60));
    }

    /// Answers from a task; the client method returns `Result<String, CallError>`.
    #[call]
    async fn describe(&self, reply: ReplyTo<String>, ctx: &mut peeper::Context<Self>) {
        let warm = self.warm;
        let _ = ctx.incarnation();
        tokio::spawn(async move { reply.send(format!("warm: {warm}")) });
    }

    #[call]
    fn quit(&mut self, why: String, ctx: &mut peeper::Context<Self>) {
        ctx.stop_with(why);
    }

    #[timeout]
    fn cool_down(&mut self) -> Result<(), std::fmt::Error> {
        self.warm = false;
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = Everything::start(Everything { enabled: true, warm: false }).await.unwrap();
    let description: Result<String, peeper::CallError> = server.describe().await;
    assert_eq!(description.unwrap(), "warm: true");
    server.quit("done".to_owned()).await.unwrap();
    let declined = Everything::start(Everything::default()).await;
    assert!(matches!(declined, Err(peeper::StartError::Ignored)));
}
