#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[terminate]
    fn terminate(&mut self, reason: &peeper::Exit) -> bool {
        reason.is_crash()
    }
}

fn main() {}
