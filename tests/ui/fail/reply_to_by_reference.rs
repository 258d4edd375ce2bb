use peeper::ReplyTo;

#[derive(Clone)]
struct Jobs(u64);

// The handle must be owned, so that it can move into a task.
#[peeper::server]
impl Jobs {
    #[call]
    fn run(&mut self, reply: &ReplyTo<u64>) {
        let _ = reply;
    }
}

fn main() {}
