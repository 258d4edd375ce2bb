#[derive(Clone, peeper::State)]
enum Session {
    Anonymous,
    User(String),
}

fn main() {}
