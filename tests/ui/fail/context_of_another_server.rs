#[derive(Clone)]
struct Counter(u64);

#[derive(Clone)]
struct Other;

#[peeper::server]
impl Counter {
    #[cast]
    fn inc(&mut self, ctx: &mut peeper::Context<Other>) {
        self.0 += 1;
        let _ = ctx;
    }
}

fn main() {}
