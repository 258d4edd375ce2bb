#[derive(Clone)]
struct Door(bool);

#[peeper::server]
impl Door {
    #[timeout]
    fn close(&mut self) {
        self.0 = false;
    }

    #[timeout]
    fn lock(&mut self) {
        self.0 = false;
    }
}

fn main() {}
