//! `#[derive(peeper::State)]` with `keep = projection`, on a generic struct.
#![deny(warnings)]

use std::collections::HashMap;

fn connect() -> String {
    "connected".to_owned()
}

#[derive(peeper::State)]
pub struct Session<T> {
    user: String,
    cart: Vec<T>,
    #[keep(skip)]
    index: HashMap<String, usize>,
    #[keep(skip, with = connect)]
    connection: String,
}

#[peeper::server(keep = projection)]
impl<T: Clone + Send + Sync + 'static> Session<T> {
    #[cast]
    fn add(&mut self, item: T) {
        self.cart.push(item);
        self.index.insert(self.user.clone(), self.cart.len());
    }

    #[call]
    fn count(&self) -> (usize, usize, String) {
        (self.cart.len(), self.index.len(), self.connection.clone())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let session = Session::<u8> {
        user: "ada".to_owned(),
        cart: Vec::new(),
        index: HashMap::new(),
        connection: connect(),
    };
    let session = Session::start(session).await?;
    session.add(1)?;
    assert_eq!(session.count().await?, (1, 1, "connected".to_owned()));
    session.stop().await?;
    Ok(())
}
