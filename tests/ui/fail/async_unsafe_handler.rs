#[derive(Clone)]
struct Raw(u64);

#[peeper::server]
impl Raw {
    #[call]
    async unsafe fn read(&self) -> u64 {
        self.0
    }
}

fn main() {}
