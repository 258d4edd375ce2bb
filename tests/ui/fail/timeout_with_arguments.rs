#[derive(Clone)]
struct Door(bool);

// No message came: `#[timeout]` has nothing to take.
#[peeper::server]
impl Door {
    #[timeout]
    fn close(&mut self, how: bool) {
        self.0 = how;
    }
}

fn main() {}
