// A call made with an idempotency key records its reply: a reply type without serde is refused
// where the keyed call is made (and only there: the plain call compiles).

#[derive(Debug)]
pub struct Receipt {
    pub total: u64,
}

#[derive(Clone, Default)]
pub struct Shop;

#[peeper::server]
impl Shop {
    #[call]
    fn checkout(&mut self) -> Receipt {
        Receipt { total: 1 }
    }
}

async fn pay(shop: ShopClient) -> Result<(), peeper::CallError> {
    let _plain = shop.checkout().await?;
    let _keyed = shop.idempotent("order-1").checkout().await?;
    Ok(())
}

fn main() {
    drop(pay);
}
