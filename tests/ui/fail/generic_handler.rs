#[derive(Clone)]
struct Store(Vec<String>);

#[peeper::server]
impl Store {
    #[cast]
    fn put<T: ToString>(&mut self, value: T) {
        self.0.push(value.to_string());
    }
}

fn main() {}
