fn empty() -> Vec<u8> {
    Vec::new()
}

#[derive(Clone, peeper::State)]
struct Session {
    user: String,
    #[keep(with = empty)]
    cache: Vec<u8>,
}

fn main() {}
