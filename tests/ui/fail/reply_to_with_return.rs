use peeper::ReplyTo;

#[derive(Clone)]
struct Jobs(u64);

// A call that takes its reply handle answers through it, not by returning.
#[peeper::server]
impl Jobs {
    #[call]
    fn run(&mut self, reply: ReplyTo<u64>) -> u64 {
        reply.send(self.0);
        self.0
    }
}

fn main() {}
