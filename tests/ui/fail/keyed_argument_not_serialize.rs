// A call made with an idempotency key is compared with the first one by a digest of its
// arguments: an argument type without `Serialize` is refused where the keyed call is made.

#[derive(Debug)]
pub struct Item(pub String);

#[derive(Clone, Default)]
pub struct Cart(Vec<String>);

#[peeper::server]
impl Cart {
    #[call]
    fn add(&mut self, item: Item) -> usize {
        self.0.push(item.0);
        self.0.len()
    }
}

async fn shop(cart: CartClient) -> Result<(), peeper::CallError> {
    cart.add(Item("tea".into())).await?;
    cart.idempotent("req-1").add(Item("tea".into())).await?;
    Ok(())
}

fn main() {
    drop(shop);
}
