use std::fmt;

#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn main() {}
