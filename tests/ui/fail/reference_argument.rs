#[derive(Clone)]
struct Greeter {
    name: String,
}

#[peeper::server]
impl Greeter {
    #[cast]
    fn rename(&mut self, name: &str) {
        self.name = name.to_owned();
    }
}

fn main() {}
