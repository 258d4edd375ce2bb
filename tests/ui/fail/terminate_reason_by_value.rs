#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[terminate]
    fn terminate(&mut self, reason: peeper::Exit) {
        println!("{reason}");
    }
}

fn main() {}
