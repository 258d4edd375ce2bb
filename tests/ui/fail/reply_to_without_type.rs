#[derive(Clone)]
struct Jobs(u64);

// The handle names what the caller gets.
#[peeper::server]
impl Jobs {
    #[call]
    fn run(&mut self, reply: peeper::ReplyTo) {
        let _ = reply;
    }
}

fn main() {}
