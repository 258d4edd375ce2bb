#[derive(Clone, peeper::State)]
struct Session(String, Vec<u8>);

fn main() {}
