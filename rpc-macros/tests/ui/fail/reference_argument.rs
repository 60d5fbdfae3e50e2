#[rpc_core::service]
pub trait Worker {
    async fn rate(&self, pair: &str) -> f64;
}

fn main() {}
