#[derive(Clone)]
struct Counter(u64);

struct NotAnError;

#[peeper::server]
impl Counter {
    #[init]
    fn init(&mut self) -> Result<(), NotAnError> {
        Err(NotAnError)
    }
}

fn main() {}
