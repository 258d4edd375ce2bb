struct Connection;

#[derive(peeper::State)]
struct Session {
    user: String,
    #[keep(skip)]
    connection: Connection,
}

fn main() {}
