use std::rc::Rc;

#[derive(Clone, Default)]
struct Cart(Vec<String>);

// A message crosses tasks (and threads): its arguments must be `Send`.
#[peeper::server]
impl Cart {
    #[cast]
    fn add(&mut self, item: Rc<String>) {
        self.0.push(item.to_string());
    }
}

fn main() {}
