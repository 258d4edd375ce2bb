#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[init]
    fn setup(&mut self) {}

    #[init]
    fn warm_up(&mut self) {}

    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
