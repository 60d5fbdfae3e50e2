#[rpc_core::service]
pub trait Worker {
    async fn rate(&mut self) -> f64;
}

fn main() {}
