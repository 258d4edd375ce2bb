#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    fn start(&mut self) {
        self.0 = 0;
    }

    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
