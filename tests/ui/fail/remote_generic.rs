// Other nodes name a remote server's kind with one `Persist::KIND`: it cannot be generic.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Vault<T> {
    items: Vec<T>,
}

#[peeper::server(remote)]
impl<T: Clone + Default + Send + Sync + 'static> Vault<T> {
    #[call]
    fn count(&self) -> usize {
        self.items.len()
    }
}

fn main() {}
