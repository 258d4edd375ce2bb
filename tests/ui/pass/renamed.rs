//! `client = ..` and `prefix = ..` rename the generated types, for a server whose default names
//! (`CounterClient`, `CounterCall`, ...) clash with the user's own.

/// The user's own type with the name the client would have had.
pub struct CounterClient;

/// And one with the name of the call enum.
pub enum CounterCall {}

#[derive(Clone, Default)]
pub struct Counter {
    count: u64,
}

#[peeper::server(client = CounterHandle, prefix = Tally)]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    #[cast]
    fn inc(&mut self) {
        self.count += 1;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _mine = CounterClient;
    let counter: CounterHandle = Counter::start(Counter::default()).await.unwrap();
    counter.inc().unwrap();
    assert_eq!(counter.get().await.unwrap(), 1);
    let _generated: TallyCall = TallyCall::Get;
    let _timeout: TallyWithTimeout<'_> = counter.with_timeout(std::time::Duration::from_secs(1));
}
