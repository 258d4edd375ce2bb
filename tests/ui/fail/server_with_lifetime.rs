#[derive(Clone)]
struct Borrowed<'a> {
    name: &'a str,
}

#[peeper::server]
impl<'a> Borrowed<'a> {
    #[call]
    fn name(&self) -> String {
        self.name.to_owned()
    }
}

fn main() {}
