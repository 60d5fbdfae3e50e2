#[rpc_core::service]
pub trait Worker {
    fn rate(&self) -> f64;
}

fn main() {}
