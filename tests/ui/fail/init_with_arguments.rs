#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[init]
    fn init(&mut self, start: u64) {
        self.0 = start;
    }
}

fn main() {}
