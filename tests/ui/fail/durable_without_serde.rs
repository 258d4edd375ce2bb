// A durable state is stored: it needs serde's derives.
#[derive(Clone, Default)]
struct Score(u64);

#[peeper::server]
impl Score {
    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

impl peeper::Persist for Score {
    const KIND: &'static str = "score";
}

fn main() {}
