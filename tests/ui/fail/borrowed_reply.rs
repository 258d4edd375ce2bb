#[derive(Clone)]
struct Greeter {
    name: String,
}

#[peeper::server]
impl Greeter {
    #[call]
    fn name(&self) -> &str {
        &self.name
    }
}

fn main() {}
