use peeper::ReplyTo;

#[derive(Clone, Default)]
struct Jobs(u64);

// `init` answers no call.
#[peeper::server]
impl Jobs {
    #[init]
    fn init(&mut self, reply: ReplyTo<u64>) {
        reply.send(self.0);
    }
}

fn main() {}
