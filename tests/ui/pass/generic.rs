//! Generic servers: type and const parameters, bounds, a where clause, `Self` in arguments, a
//! parameter that no message uses.
#![deny(warnings)]

use std::fmt::Debug;
use std::marker::PhantomData;

pub trait Item: Clone + Debug + Send + Sync + 'static {}
impl Item for u32 {}

#[derive(Clone, Debug)]
pub struct Ring<T, M, const N: usize> {
    items: Vec<T>,
    meta: PhantomData<M>,
}

#[peeper::server]
impl<T: Item, M, const N: usize> Ring<T, M, N>
where
    M: Clone + Send + Sync + 'static,
{
    #[cast]
    fn push(&mut self, item: T) {
        if self.items.len() == N {
            self.items.remove(0);
        }
        self.items.push(item);
    }

    #[call]
    fn snapshot(&self) -> Self {
        self.clone()
    }

    #[call]
    fn replace(&mut self, with: Self) -> Vec<T> {
        std::mem::replace(&mut self.items, with.items)
    }

    #[info]
    fn clear(&mut self) {
        self.items.clear();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ring: RingClient<u32, (), 2> = Ring::start(Ring { items: Vec::new(), meta: PhantomData }).await?;
    for item in 0..5 {
        ring.push(item)?;
    }
    assert_eq!(ring.snapshot().await?.items, [3, 4]);
    let old = ring.replace(Ring { items: vec![9], meta: PhantomData }).await?;
    assert_eq!(old, [3, 4]);
    ring.send(RingInfo::Clear)?;
    assert!(ring.snapshot().await?.items.is_empty());
    ring.stop().await?;
    Ok(())
}
