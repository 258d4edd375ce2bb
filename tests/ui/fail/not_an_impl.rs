#[peeper::server]
#[derive(Clone)]
struct Counter(u64);

fn main() {}
