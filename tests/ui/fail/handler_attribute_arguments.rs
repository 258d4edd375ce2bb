#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[call(timeout = 5)]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
