#[derive(Clone, Default)]
struct Counter(u64);

// `client` and `prefix` take a type name.
#[peeper::server(client = "CounterHandle", prefix)]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
