#[derive(Clone, Default)]
struct Door(bool);

// Nobody waits for a timeout handler: it returns `()` or `Result<(), E>`.
#[peeper::server]
impl Door {
    #[timeout]
    fn close(&mut self) -> impl Iterator<Item = u8> {
        self.0 = false;
        std::iter::empty()
    }
}

fn main() {}
