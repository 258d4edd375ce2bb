// A remote server's replies cross process boundaries too.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Vault {
    opened: u64,
}

struct Receipt;

#[peeper::server(remote)]
impl Vault {
    #[call]
    fn open(&mut self) -> Receipt {
        self.opened += 1;
        Receipt
    }
}

fn main() {}
