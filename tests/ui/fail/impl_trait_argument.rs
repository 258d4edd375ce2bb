#[derive(Clone)]
struct Log(Vec<String>);

#[peeper::server]
impl Log {
    #[cast]
    fn push(&mut self, line: impl std::fmt::Display) {
        self.0.push(line.to_string());
    }
}

fn main() {}
