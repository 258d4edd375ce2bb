#[derive(Clone)]
struct Counter(u64);

#[peeper::server(keep = snapshot, keep = in_place)]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
