use std::time::Duration;

#[derive(Clone, Default)]
struct Cart(Vec<String>);

// A borrowed argument is one mistake, reported once: the code that uses the server (`start`, the
// client's methods) gets no error of its own while it is fixed.
#[peeper::server]
impl Cart {
    #[cast]
    fn add(&mut self, item: &str) {
        self.0.push(item.to_owned());
    }

    #[call]
    fn items(&self) -> Vec<String> {
        self.0.clone()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cart = Cart::start(Cart::default()).await.unwrap();
    cart.add("apple").unwrap();
    let _ = cart.items().await.unwrap();
    let _ = cart.with_timeout(Duration::from_secs(1)).items().await;
    let _ = Cart::builder(Cart::default()).name("cart");
    cart.stop().await.unwrap();
}
