#[rpc_core::service]
pub trait Worker {
    async fn convert<T>(&self, value: u32) -> u32;
}

fn main() {}
