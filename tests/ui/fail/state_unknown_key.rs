#[derive(Clone, peeper::State)]
struct Session {
    user: String,
    #[keep(skipp)]
    cache: Vec<u8>,
}

fn main() {}
