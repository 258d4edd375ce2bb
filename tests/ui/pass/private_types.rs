//! A private server whose messages carry private types, in a private module: the generated items
//! are `pub` (they must be at least as visible as the server), and no lint complains.
#![deny(warnings)]

mod inner {
    #[derive(Clone, Debug, Default)]
    struct Secret(u64);

    #[derive(Debug)]
    struct Key(u64);

    #[derive(Clone, Default)]
    pub(crate) struct Vault {
        secret: Secret,
    }

    #[peeper::server(keep = in_place)]
    impl Vault {
        #[cast]
        fn store(&mut self, key: Key) {
            self.secret = Secret(key.0);
        }

        #[call]
        fn peek(&self) -> u64 {
            self.secret.0
        }

        #[info]
        fn rotate(&mut self, key: Key) {
            self.secret = Secret(key.0 + 1);
        }
    }

    pub(crate) async fn run() -> Result<u64, Box<dyn std::error::Error>> {
        let vault = Vault::start(Vault::default()).await?;
        vault.store(Key(1))?;
        vault.send(Key(2))?;
        let value = vault.peek().await?;
        vault.stop().await?;
        Ok(value)
    }
}

// The same at the crate root, where `pub` items are reachable: the generated `pub` items name the
// private `Counter` and `Step` (in `CounterClient::inner`, in `CounterCast::Add`).
#[derive(Clone, Default)]
struct Counter(u64);

#[derive(Debug)]
struct Step(u64);

#[peeper::server]
impl Counter {
    #[cast]
    fn add(&mut self, step: Step) {
        self.0 += step.0;
    }

    #[call]
    fn get(&self) -> u64 {
        self.0
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    assert_eq!(inner::run().await?, 3);
    let counter = Counter::start(Counter::default()).await?;
    counter.add(Step(2))?;
    assert_eq!(counter.get().await?, 2);
    let _generic: &peeper::Client<Counter> = counter.inner();
    counter.stop().await?;
    Ok(())
}
