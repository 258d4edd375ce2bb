#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[call]
    fn restarts(&self, ctx: &peeper::Context<Self>) -> u64 {
        ctx.incarnation()
    }
}

fn main() {}
