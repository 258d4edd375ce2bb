#[derive(Clone)]
struct Counter(u64);

#[allow(non_snake_case)]
#[peeper::server]
impl Counter {
    #[call]
    fn get_count(&self) -> u64 {
        self.0
    }

    #[call]
    fn getCount(&self) -> u64 {
        self.0
    }
}

fn main() {}
