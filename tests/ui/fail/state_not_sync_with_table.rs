use std::cell::Cell;

// A value kept across crashes is shared with the tables' other handles: it must be `Sync`.
#[derive(Clone, Default)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[call]
    fn keep(&self, ctx: &mut peeper::Context<Self>) {
        ctx.keep(Cell::new(1u64));
    }
}

fn main() {}
