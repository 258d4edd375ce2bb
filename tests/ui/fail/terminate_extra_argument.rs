#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[terminate]
    fn terminate(&mut self, reason: &peeper::Exit, code: i32) {
        println!("{reason} {code}");
    }
}

fn main() {}
