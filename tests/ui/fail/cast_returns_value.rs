#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[cast]
    fn inc(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn main() {}
