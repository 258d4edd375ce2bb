// With `keep = projection`, a durable server stores the fields it keeps: each must be a serde
// type, or marked `#[keep(skip)]`.
#[derive(Clone, Default)]
pub struct Connection;

#[derive(Default, peeper::State)]
pub struct Session {
    cart: Vec<String>,
    connection: Connection,
}

#[peeper::server(keep = projection)]
impl Session {
    #[call]
    fn items(&self) -> usize {
        self.cart.len()
    }
}

impl peeper::Persist for Session {
    const KIND: &'static str = "session";
}

fn main() {}
