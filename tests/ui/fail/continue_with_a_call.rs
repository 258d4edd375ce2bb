#[derive(Clone, Default)]
struct Loader(bool);

// A continuation is a cast of this server, not a call.
#[peeper::server]
impl Loader {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        ctx.continue_with(LoaderCall::Loaded);
    }

    #[cast]
    fn load(&mut self) {
        self.0 = true;
    }

    #[call]
    fn loaded(&self) -> bool {
        self.0
    }
}

fn main() {}
