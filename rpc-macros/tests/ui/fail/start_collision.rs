#[rpc_core::service]
pub trait Worker {
    async fn job(&self) -> u32;
    async fn start_job(&self) -> u32;
}

fn main() {}
