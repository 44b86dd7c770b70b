//! `berthd`: the engine daemon serving the Docker Engine API.
fn main() {
    println!("berthd {}", env!("CARGO_PKG_VERSION"));
}
