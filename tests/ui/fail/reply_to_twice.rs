use peeper::ReplyTo;

#[derive(Clone)]
struct Jobs(u64);

// A call has one reply.
#[peeper::server]
impl Jobs {
    #[call]
    fn run(&mut self, first: ReplyTo<u64>, second: ReplyTo<u64>) {
        first.send(self.0);
        second.send(self.0);
    }
}

fn main() {}
