//! placeholder
#[derive(Debug)]
pub struct GroupCommit;
impl GroupCommit {
    pub fn spawn() -> std::sync::Arc<Self> {
        std::sync::Arc::new(GroupCommit)
    }
    pub async fn sync(&self, _f: Vec<std::sync::Arc<std::fs::File>>) -> std::io::Result<()> {
        Ok(())
    }
}
