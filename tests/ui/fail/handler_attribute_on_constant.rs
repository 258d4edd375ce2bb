#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[call]
    const LIMIT: u64 = 10;

    #[call]
    fn get(&self) -> u64 {
        self.0.min(Self::LIMIT)
    }
}

fn main() {}
