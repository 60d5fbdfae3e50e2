#[rpc_core::service(fast)]
pub trait Worker {
    async fn rate(&self) -> f64;
}

fn main() {}
