//! In-memory log for tests (placeholder until the engine lands).
use super::*;
#[derive(Debug)]
pub struct MemoryLog;
impl MemoryLog {
    pub fn new(_c: LogConfig) -> Self {
        MemoryLog
    }
}
impl PartitionLog for MemoryLog {
    fn append(&mut self, _b: &mut [u8], _e: i32, _n: i64) -> Result<AppendInfo, LogError> {
        todo!()
    }
    fn read(&self, _o: i64, _m: usize) -> Result<Bytes, LogError> {
        todo!()
    }
    fn log_start_offset(&self) -> i64 {
        0
    }
    fn log_end_offset(&self) -> i64 {
        0
    }
    fn find_by_timestamp(&self, _t: i64) -> Result<Option<FoundBatch>, LogError> {
        todo!()
    }
    fn max_timestamp(&self) -> Result<Option<(i64, FoundBatch)>, LogError> {
        todo!()
    }
    fn delete_records_before(&mut self, _o: i64) -> Result<i64, LogError> {
        todo!()
    }
    fn apply_retention(&mut self, _n: i64) -> Result<usize, LogError> {
        todo!()
    }
    fn set_config(&mut self, _c: LogConfig) {}
    fn size_bytes(&self) -> u64 {
        0
    }
    fn sync_handle(&self) -> Option<Arc<std::fs::File>> {
        None
    }
    fn flush(&mut self) -> Result<(), LogError> {
        Ok(())
    }
    fn scan(
        &self,
        _f: i64,
        _g: &mut dyn FnMut(kmirror_wire::batch::BatchView<'_>) -> bool,
    ) -> Result<(), LogError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), LogError> {
        Ok(())
    }
    fn delete(self: Box<Self>) -> Result<(), LogError> {
        Ok(())
    }
}
