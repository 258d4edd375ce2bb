#[derive(Clone, peeper::State)]
struct Session {
    user: String,
    #[keep]
    cache: Vec<u8>,
}

fn main() {}
