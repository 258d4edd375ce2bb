// `remote` is a flag, not an option with a value.
#[derive(Clone, Default)]
struct Vault;

#[peeper::server(remote = true)]
impl Vault {
    #[call]
    fn open(&self) {}
}

fn main() {
    let _ = Vault::start(Vault);
}
