use peeper::ReplyTo;

#[derive(Clone)]
struct Jobs(u64);

// A cast has no caller waiting for a reply: a reply handle there is a mistake.
#[peeper::server]
impl Jobs {
    #[cast]
    fn run(&mut self, reply: ReplyTo<u64>) {
        reply.send(self.0);
    }
}

fn main() {}
