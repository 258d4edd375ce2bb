#[derive(Clone)]
struct Job(u64);

// The client already has `stop_with`.
#[peeper::server]
impl Job {
    #[cast]
    fn stop_with(&mut self, code: u64) {
        self.0 = code;
    }
}

fn main() {}
