#[derive(Clone)]
struct Point {
    x: i32,
    y: i32,
}

#[peeper::server]
impl Point {
    #[cast]
    fn move_to(&mut self, (x, y): (i32, i32)) {
        self.x = x;
        self.y = y;
    }
}

fn main() {}
