use peeper::ReplyTo;

#[derive(Clone)]
struct Jobs(String);

// What the caller gets crosses tasks: it cannot borrow.
#[peeper::server]
impl Jobs {
    #[call]
    fn name(&self, reply: ReplyTo<&str>) {
        let _ = reply;
    }
}

fn main() {}
