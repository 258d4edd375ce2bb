//! Servers at the edges: no handlers at all, only `#[cfg]`-disabled ones, raw identifiers,
//! `Result` from `#[init]`, `&self` `#[init]` and `#[terminate]` without a reason.
#![deny(warnings)]

#[derive(Clone, Default)]
pub struct Nothing;

#[peeper::server]
impl Nothing {}

#[derive(Clone, Default)]
pub struct Disabled;

#[peeper::server]
impl Disabled {
    #[cfg(any())]
    #[call]
    fn never(&self) -> u8 {
        0
    }
}

#[derive(Clone, Default)]
pub struct Raw {
    r#type: String,
}

#[peeper::server]
impl Raw {
    #[init]
    fn check(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    #[call]
    fn r#type(&self) -> String {
        self.r#type.clone()
    }

    #[cast]
    fn r#set(&mut self, r#type: String) {
        self.r#type = r#type;
    }

    #[terminate]
    async fn bye(&mut self, ctx: &mut peeper::Context<Self>) {
        let _ = ctx.incarnation();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    Nothing::start(Nothing).await?.stop().await?;
    Disabled::start(Disabled).await?.stop().await?;
    let raw = Raw::start(Raw::default()).await?;
    raw.r#set("x".to_owned())?;
    assert_eq!(raw.r#type().await?, "x");
    raw.stop().await?;
    Ok(())
}
