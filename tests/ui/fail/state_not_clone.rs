// The default keep strategy, `Snapshot`, copies the state with `Clone`.
#[derive(Default)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
