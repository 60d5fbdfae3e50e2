#[rpc_core::service]
pub trait Worker {
    const LIMIT: u32;
    async fn rate(&self) -> f64;
}

fn main() {}
