#[rpc_core::service]
pub trait Worker {
    fn not_async(&self) -> u32;
    async fn generic<T>(&self) -> u32;
    async fn borrowed(&self, name: &String) -> u32;
    async fn owned_self(self) -> u32;
    async fn with_body(&self) -> u32 {
        1
    }
}

fn main() {}
