#[derive(Clone)]
struct Counter(u64);

#[peeper::server(keep = clone)]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
