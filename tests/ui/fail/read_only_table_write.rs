use peeper::{ReadOnly, Table};

#[derive(Clone, Default)]
struct Cache;

#[peeper::server]
impl Cache {
    #[call]
    fn get(&self) -> u64 {
        0
    }
}

// A table opened read-only from outside its server cannot be written.
fn write(table: &ReadOnly<Table<String, u64>>) {
    table.insert("a".to_owned(), 1);
}

fn main() {
    let _ = write;
}
