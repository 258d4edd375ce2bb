//! Three cycles of "increment three times, then get killed": the count goes 1 to 9 and
//! nothing is lost, as in the Elixir forum demo that keeps a public ETS table.
//!
//! Run it with `cargo run --example dont_lose`.

#[derive(Clone, Debug, Default)]
pub struct Counter(u64);

#[peeper::server]
impl Counter {
    #[call]
    fn get(&self) -> u64 {
        self.0
    }

    #[cast]
    fn inc(&mut self) {
        self.0 += 1;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Counter::start(Counter::default()).await?;
    for cycle in 1..=3 {
        for _ in 0..3 {
            counter.inc()?;
            println!("{}", counter.get().await?);
        }
        let restarted = counter.branch().next_restart();
        counter.branch().kill_worker()?;
        let incarnation = restarted.await?;
        println!("-- cycle {cycle}: worker killed, incarnation {incarnation} took over");
    }
    assert_eq!(counter.get().await?, 9, "nothing was lost");
    counter.stop().await?;
    Ok(())
}
