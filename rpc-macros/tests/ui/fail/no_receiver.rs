#[rpc_core::service]
pub trait Worker {
    async fn rate(pair: String) -> f64;
}

fn main() {}
