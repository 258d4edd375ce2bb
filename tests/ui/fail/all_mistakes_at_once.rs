#[derive(Clone)]
struct Counter(u64);

// Three mistakes: each is reported, with its own span.
#[peeper::server(keep = copy)]
impl Counter {
    #[call]
    fn get(self) -> u64 {
        self.0
    }

    #[cast]
    fn set(&mut self, value: &u64) {
        self.0 = *value;
    }
}

fn main() {}
