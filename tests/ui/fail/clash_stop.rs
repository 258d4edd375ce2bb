#[derive(Clone)]
struct Machine(bool);

#[peeper::server]
impl Machine {
    #[cast]
    fn stop(&mut self) {
        self.0 = false;
    }
}

fn main() {}
