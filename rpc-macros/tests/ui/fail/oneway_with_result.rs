#[rpc_core::service]
pub trait Worker {
    #[oneway]
    async fn log(&self, line: String) -> bool;
}

fn main() {}
