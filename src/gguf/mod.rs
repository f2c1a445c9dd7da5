// TEMPORARY STUB for type-checking; replaced by the real reader.
use crate::{GgmlType, Result};
use std::path::Path;
#[derive(Default, Clone, Copy)]
pub struct OpenOptions {
    pub mmap: bool,
}
pub struct GgufFile;
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    pub ne: Vec<u64>,
    pub offset: u64,
    pub nbytes: u64,
    pub n_elems: u64,
}
impl TensorInfo {
    pub fn shape_row_major(&self) -> Vec<u64> {
        todo!()
    }
}
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(u32, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}
impl Value {
    pub fn to_json(&self) -> serde_json::Value {
        todo!()
    }
    pub fn type_name(&self) -> &'static str {
        todo!()
    }
}
impl std::fmt::Display for Value {
    fn fmt(&self, _f: &mut std::fmt::Formatter) -> std::fmt::Result {
        todo!()
    }
}
impl GgufFile {
    pub fn open(_p: impl AsRef<Path>) -> Result<Self> {
        todo!()
    }
    pub fn open_with(_p: impl AsRef<Path>, _o: OpenOptions) -> Result<Self> {
        todo!()
    }
    pub fn from_bytes(_b: Vec<u8>) -> Result<Self> {
        todo!()
    }
    pub fn version(&self) -> u32 {
        todo!()
    }
    pub fn alignment(&self) -> u64 {
        todo!()
    }
    pub fn data_offset(&self) -> u64 {
        todo!()
    }
    pub fn metadata(&self) -> &[(String, Value)] {
        todo!()
    }
    pub fn tensors(&self) -> &[TensorInfo] {
        todo!()
    }
    pub fn tensor(&self, _n: &str) -> Option<&TensorInfo> {
        todo!()
    }
    pub fn tensor_data(&self, _t: &TensorInfo) -> Result<&[u8]> {
        todo!()
    }
}
pub struct GgufWriter;
impl GgufWriter {
    pub fn new() -> Self {
        GgufWriter
    }
    pub fn add_kv(&mut self, _k: &str, _v: Value) {}
    pub fn add_tensor(&mut self, _n: &str, _t: GgmlType, _ne: &[u64], _d: Vec<u8>) -> Result<()> {
        todo!()
    }
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        todo!()
    }
}
