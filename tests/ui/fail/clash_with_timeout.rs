#[derive(Clone)]
struct Net(u64);

#[peeper::server]
impl Net {
    #[call]
    fn with_timeout(&mut self, ms: u64) -> u64 {
        self.0 = ms;
        ms
    }
}

fn main() {}
