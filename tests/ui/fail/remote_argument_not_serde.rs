// A remote server's messages cross process boundaries: every argument must be serde.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Vault {
    opened: u64,
}

/// Not serializable: a handle that only makes sense in this process.
struct Secret(std::sync::Arc<std::sync::Mutex<u8>>);

#[peeper::server(remote)]
impl Vault {
    #[call]
    fn open(&mut self, secret: Secret) -> u64 {
        drop(secret);
        self.opened += 1;
        self.opened
    }
}

fn main() {}
