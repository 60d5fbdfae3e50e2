#[rpc_core::service]
pub trait Worker {
    async fn new(&self) -> u32;
}

fn main() {}
