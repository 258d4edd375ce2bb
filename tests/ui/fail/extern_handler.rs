#[derive(Clone)]
struct Raw(u64);

#[peeper::server]
impl Raw {
    #[cast]
    extern "C" fn poke(&mut self) {
        self.0 += 1;
    }
}

fn main() {}
