#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[call]
    fn get() -> u64 {
        0
    }
}

fn main() {}
