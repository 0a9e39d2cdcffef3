//! placeholder
use super::*;
pub type DiskLog = super::memory::MemoryLog;
impl DiskLog {
    pub fn open(_d: &std::path::Path, c: LogConfig, _n: i64) -> Result<Self, LogError> {
        Ok(Self::new(c))
    }
}
