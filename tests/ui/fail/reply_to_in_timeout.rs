use peeper::ReplyTo;

#[derive(Clone, Default)]
struct Jobs(u64);

// A timeout handler answers no call.
#[peeper::server]
impl Jobs {
    #[timeout]
    fn idle(&mut self, reply: ReplyTo<u64>) {
        reply.send(self.0);
    }
}

fn main() {}
