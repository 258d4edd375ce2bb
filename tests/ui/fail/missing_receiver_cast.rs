#[derive(Clone)]
struct Counter(u64);

#[peeper::server]
impl Counter {
    #[cast]
    fn log(line: String) {
        println!("{line}");
    }
}

fn main() {}
